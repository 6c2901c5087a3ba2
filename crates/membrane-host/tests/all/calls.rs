//! Calls through the envelope: raw, typed, in place, errors from the guest.

use membrane_host::{ErrorCode, ErrorKind};

use crate::support::instance;

#[test]
fn echo_round_trips_every_size() {
    let mut echo = instance("echo");
    for size in [0usize, 1, 63, 64, 1024, 65_536, 1 << 20] {
        let input: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        assert_eq!(echo.call_raw("echo", &input).unwrap(), input, "size {size}");
        let mut reversed = input.clone();
        reversed.reverse();
        assert_eq!(
            echo.call_raw("reverse", &input).unwrap(),
            reversed,
            "size {size}"
        );
    }
}

#[test]
fn raw_guest_error_carries_code_and_message() {
    let mut echo = instance("echo");
    let err = echo.call_raw("reject", b"abc").unwrap_err();
    match err.kind() {
        ErrorKind::Guest { code, message } => {
            assert_eq!(*code, ErrorCode(1001));
            assert_eq!(message, "rejected 3 bytes");
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
    // A guest error does not poison the instance.
    assert!(!echo.is_poisoned());
    assert_eq!(echo.call_raw("echo", b"still here").unwrap(), b"still here");
}
