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

/// Test input of `size` bytes: every byte value, no repeating period short enough to hide
/// a misplaced block.
pub(crate) fn bytes_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + i / 251 + 7) as u8).collect()
}

/// `#[export]` bytes exports (`fn f(input: &[u8]) -> Result<B, E>`): the input slice
/// returned as it is, a new vector, and a part of the input.
#[test]
fn bytes_exports_round_trip_every_size() {
    let mut echo = instance("echo");
    for size in [0usize, 64, 1024, 65_536, 1 << 20] {
        let input = bytes_of(size);
        assert_eq!(
            echo.call_raw("echo_bytes", &input).unwrap(),
            input,
            "size {size}"
        );
        let mut reversed = input.clone();
        reversed.reverse();
        assert_eq!(
            echo.call_raw("reverse_bytes", &input).unwrap(),
            reversed,
            "size {size}"
        );
        assert_eq!(
            echo.call_raw("first_half", &input).unwrap(),
            &input[..size / 2],
            "size {size}"
        );
        // Read in place too.
        let same = echo
            .call_with("echo_bytes", &input, |out| out == &input[..])
            .unwrap();
        assert!(same, "size {size}");
    }
    assert!(!echo.is_poisoned());
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

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Item {
    name: String,
    unit_cents: u64,
    quantity: u32,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    items: Vec<Item>,
    discount_percent: Option<u8>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Receipt {
    id: u64,
    total_cents: u64,
    names: Vec<String>,
}

fn item(name: &str, unit_cents: u64, quantity: u32) -> Item {
    Item {
        name: name.into(),
        unit_cents,
        quantity,
    }
}

/// Asserts that `result` is a guest error with this code and a message containing `needle`.
fn check_guest_error<T: std::fmt::Debug>(
    result: membrane_host::Result<T>,
    code: u32,
    needle: &str,
) {
    let err = result.unwrap_err();
    match err.kind() {
        ErrorKind::Guest { code: c, message } => {
            assert_eq!(*c, ErrorCode(code), "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn typed_struct_round_trip() {
    let mut typed = instance("typed");
    let order = Order {
        id: 42,
        items: vec![item("pear", 150, 4), item("apple", 99, 10)],
        discount_percent: Some(10),
    };
    let receipt: Receipt = typed.call("total", &order).unwrap();
    assert_eq!(
        receipt,
        Receipt {
            id: 42,
            total_cents: (600 + 990) - (600 + 990) / 10,
            names: vec!["apple".into(), "pear".into()],
        }
    );
}

#[test]
fn typed_strings_vectors_and_unit_input() {
    let mut typed = instance("typed");
    let s: String = typed.call("shout", "grüße, membrane").unwrap();
    assert_eq!(s, "GRÜSSE, MEMBRANE");
    let v: Vec<i64> = typed
        .call("sort_unique", &vec![5i64, -1, 5, 3, -1, 0])
        .unwrap();
    assert_eq!(v, vec![-1, 0, 3, 5]);
    let big: Vec<i64> = (0..100_000).rev().collect();
    let sorted: Vec<i64> = typed.call("sort_unique", &big).unwrap();
    assert_eq!(sorted, (0..100_000).collect::<Vec<i64>>());
    let hello: String = typed.call("hello", &()).unwrap();
    assert_eq!(hello, "hello from membrane");
    let q: i64 = typed.call("divide", &(-9i64, 2i64)).unwrap();
    assert_eq!(q, -4);
}

#[test]
fn typed_guest_errors_have_code_and_message() {
    let mut typed = instance("typed");
    check_guest_error(
        typed.call::<_, i64>("divide", &(1i64, 0i64)),
        1003,
        "cannot divide 1 by 0",
    );
    let empty = Order {
        id: 7,
        items: vec![],
        discount_percent: None,
    };
    check_guest_error(
        typed.call::<_, Receipt>("total", &empty),
        1001,
        "order 7 has no items",
    );
    let overflow = Order {
        id: 8,
        items: vec![item("gold", u64::MAX, 2)],
        discount_percent: None,
    };
    check_guest_error(
        typed.call::<_, Receipt>("total", &overflow),
        1002,
        "line gold overflows",
    );
    // A string error gets the generic guest code.
    let bad_discount = Order {
        id: 9,
        items: vec![item("x", 1, 1)],
        discount_percent: Some(101),
    };
    check_guest_error(
        typed.call::<_, Receipt>("total", &bad_discount),
        ErrorCode::GUEST_ERROR.0,
        "more than 100%",
    );
    assert!(!typed.is_poisoned());
}

#[test]
fn input_of_the_wrong_type_is_an_invalid_input_error() {
    let mut typed = instance("typed");
    // `divide` wants two varints; one byte 0xff is not a varint.
    check_guest_error(
        typed.call_raw("divide", &[0xff]),
        ErrorCode::INVALID_INPUT.0,
        "does not deserialize",
    );
    // Trailing bytes after the value are refused too.
    let mut input = postcard::to_allocvec(&(1i64, 1i64)).unwrap();
    input.push(0);
    check_guest_error(
        typed.call_raw("divide", &input),
        ErrorCode::INVALID_INPUT.0,
        "trailing",
    );
}

#[test]
fn output_of_the_wrong_type_is_a_deserialize_error() {
    let mut typed = instance("typed");
    let err = typed
        .call::<_, (u64, u64, u64)>("shout", "abc")
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Deserialize(_)), "{err:?}");
}

#[test]
fn call_with_reads_output_in_place() {
    let mut echo = instance("echo");
    let input = vec![7u8; 4096];
    let sum = echo
        .call_with("echo", &input, |out| {
            out.iter().map(|&b| u64::from(b)).sum::<u64>()
        })
        .unwrap();
    assert_eq!(sum, 7 * 4096);
}

#[test]
fn unknown_function_is_named() {
    let mut echo = instance("echo");
    let err = echo.call_raw("nope", b"").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownFunction { name } if name == "nope"),
        "{err:?}"
    );
    // Reserved exports are not callable functions.
    let err = echo.call_raw("__membrane_alloc", b"").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownFunction { .. }),
        "{err:?}"
    );
    assert!(!echo.is_poisoned());
}

#[test]
fn module_lists_its_functions() {
    let typed = crate::support::module("typed");
    let mut names: Vec<&str> = typed.functions().collect();
    names.sort_unstable();
    assert_eq!(names, ["divide", "hello", "shout", "sort_unique", "total"]);
}

#[test]
fn stateful_instance_keeps_state_and_fresh_instances_do_not() {
    let pre = crate::support::module("stateful")
        .prepare(&membrane_host::HostFunctions::new())
        .unwrap();
    let mut kept = pre.instantiate(()).unwrap();
    assert_eq!(kept.call::<_, u64>("add", &5u64).unwrap(), 5);
    assert_eq!(kept.call::<_, u64>("add", &7u64).unwrap(), 12);
    assert_eq!(kept.call::<_, usize>("remember", "one").unwrap(), 1);
    assert_eq!(kept.call::<_, usize>("remember", "two").unwrap(), 2);
    assert_eq!(
        kept.call::<_, Vec<String>>("recall", &()).unwrap(),
        ["one", "two"]
    );
    assert_eq!(kept.call::<_, usize>("forget", &()).unwrap(), 2);
    assert_eq!(
        kept.call::<_, Vec<String>>("recall", &()).unwrap(),
        Vec::<String>::new()
    );

    // Fresh instances start from zero every time.
    for _ in 0..3 {
        assert_eq!(pre.call_fresh::<_, u64>((), "add", &5u64).unwrap(), 5);
    }
    // Two instances do not share state.
    let mut other = pre.instantiate(()).unwrap();
    assert_eq!(other.call::<_, u64>("add", &1u64).unwrap(), 1);
    assert_eq!(kept.call::<_, u64>("add", &1u64).unwrap(), 13);
}

#[test]
fn memory_stays_constant_over_100_000_calls() {
    let mut echo = instance("echo");
    let mut typed = instance("typed");
    let input = vec![3u8; 1000];
    // Warm up: the arena reaches its working size.
    for _ in 0..1000 {
        echo.call_raw("reverse", &input).unwrap();
        typed.call::<_, String>("shout", "warm").unwrap();
    }
    let (echo_before, typed_before) = (echo.memory_size(), typed.memory_size());
    for i in 0..100_000u32 {
        let out = echo.call_with("reverse", &input, |out| out.len()).unwrap();
        assert_eq!(out, input.len());
        if i % 10 == 0 {
            typed.call::<_, String>("shout", "again").unwrap();
        }
    }
    assert_eq!(echo.memory_size(), echo_before, "echo guest memory grew");
    assert_eq!(typed.memory_size(), typed_before, "typed guest memory grew");
}
