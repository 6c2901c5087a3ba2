//! Host functions: typed closures, host state, failures, re-entrant calls.

use membrane_host::{ErrorCode, ErrorKind, HostError, HostFunctions, Instance};

use crate::support::module;

/// Host state of these tests: what the guest logged, and how often `add` ran.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    adds: u32,
}

fn host_functions() -> HostFunctions<Log> {
    let mut host = HostFunctions::<Log>::new();
    host.register("add", |ctx, (a, b): (u32, u32)| -> Result<u32, HostError> {
        ctx.state_mut().adds += 1;
        a.checked_add(b)
            .ok_or_else(|| HostError::new(2001u32, format!("{a} + {b} overflows")))
    })
    .register("log_line", |ctx, line: String| -> Result<(), HostError> {
        ctx.state_mut().lines.push(line);
        Ok(())
    })
    .register(
        "always_fails",
        |ctx, input: String| -> Result<(), HostError> {
            Err(HostError::new(
                2002u32,
                format!("{} refuses {input:?}", ctx.function()),
            ))
        },
    )
    .register("call_back", |ctx, n: u32| -> Result<u32, HostError> {
        // Re-enter the same instance.
        Ok(ctx.call::<_, u32>("double", &n)? + 1)
    })
    // The guest's bytes host function: the payload bytes in, the same bytes out.
    .register_raw("echo_bytes", |_ctx, bytes| Ok(bytes.to_vec()));
    host
}

fn host_fns_instance() -> Instance<Log> {
    module("host-fns")
        .prepare(&host_functions())
        .unwrap()
        .instantiate(Log::default())
        .unwrap()
}

#[test]
fn typed_host_function_with_state() {
    let mut guest = host_fns_instance();
    assert_eq!(
        guest
            .call::<_, u32>("sum_via_host", &(40u32, 2u32))
            .unwrap(),
        42
    );
    assert_eq!(
        guest
            .call::<_, u32>("sum_list", &vec![1u32, 2, 3, 4])
            .unwrap(),
        10
    );
    assert_eq!(guest.state().adds, 5);
    assert_eq!(guest.call::<_, u32>("sum_to", &100u32).unwrap(), 4950);
    assert_eq!(guest.state().adds, 105);
    let lines = vec!["first".to_string(), "second".to_string()];
    assert_eq!(guest.call::<_, u32>("log_all", &lines).unwrap(), 2);
    assert_eq!(guest.state().lines, lines);
}

/// Requests of every length class the guest's encoder handles (empty, short runs
/// written byte by byte, long runs copied) reach the host intact.
#[test]
fn requests_of_every_length_reach_the_host_intact() {
    let mut guest = host_fns_instance();
    let lines = vec![
        String::new(),
        "fifteen bytes!!".to_string(),
        "sixteen bytes!!!".to_string(),
        "é".repeat(40),
        "x".repeat(70_000),
    ];
    assert_eq!(guest.call::<_, u32>("log_all", &lines).unwrap(), 5);
    assert_eq!(guest.state().lines, lines);
}

#[test]
fn host_function_errors_reach_the_guest_as_error_envelopes() {
    let mut guest = host_fns_instance();
    // The guest sees the host's code and message and can handle them ...
    let seen: String = guest.call("try_failing", "x").unwrap();
    assert_eq!(seen, "code 2002: always_fails refuses \"x\"");
    // ... or pass them on, in which case the host sees them as the guest's error.
    let err = guest.call::<_, ()>("propagate_failure", "y").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Guest { code, message } if *code == ErrorCode(2002) && message.contains("refuses \"y\"")),
        "{err:?}"
    );
    // Overflow inside `add` is a host error too, not a host panic.
    let err = guest
        .call::<_, u32>("sum_via_host", &(u32::MAX, 1u32))
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Guest { code, .. } if *code == ErrorCode(2001)),
        "{err:?}"
    );
    assert!(!guest.is_poisoned());
    assert_eq!(
        guest.call::<_, u32>("sum_via_host", &(1u32, 1u32)).unwrap(),
        2
    );
}

/// A host call made from inside the serialization of another host call's request (a
/// `Serialize` impl that calls the host) does not disturb the outer request, which is
/// being written into the same guest-side buffer.
#[test]
fn host_call_nested_in_a_request_serialization() {
    let mut guest = host_fns_instance();
    for n in [0u32, 5, 200, 70_000] {
        assert_eq!(guest.call::<_, u32>("add_nested", &n).unwrap(), 2 * n + 1);
    }
    assert_eq!(guest.state().adds, 8);
}

/// Host calls made while a value is deserialized: the export's input (`add_in_input`)
/// and a host function's response, which lies in the guest's buffer for host calls
/// while it is read (`add_in_response`: the nested call must not use that buffer).
#[test]
fn host_call_nested_in_a_deserialization() {
    let mut guest = host_fns_instance();
    for n in [0u32, 5, 200, 70_000] {
        assert_eq!(guest.call::<_, u32>("add_in_input", &n).unwrap(), n + 1);
        assert_eq!(
            guest
                .call::<_, u32>("add_in_response", &(n, 2 * n))
                .unwrap(),
            3 * n + 1
        );
    }
    assert_eq!(guest.state().adds, 12);
}

/// A bytes host function (`host_externs!(..; bytes: echo_bytes)`) called from a bytes
/// export that returns the host's response: requests and responses that fit the guest's
/// 1 KiB buffer and larger ones.
#[test]
fn bytes_host_function_round_trips_every_size() {
    let mut guest = host_fns_instance();
    for size in [0usize, 64, 1000, 1012, 1013, 1024, 65_536, 1 << 20] {
        let input = crate::calls::bytes_of(size);
        assert_eq!(
            guest.call_raw("through_host", &input).unwrap(),
            input,
            "size {size}"
        );
    }
    assert!(!guest.is_poisoned());
}

/// A host call made while the response of another is being read (in the `read` closure
/// of `echo_bytes_with`) leaves that response intact, wherever it lies.
#[test]
fn bytes_host_call_nested_in_reading_a_response() {
    let mut guest = host_fns_instance();
    for size in [0usize, 64, 1000, 1024, 65_536, 1 << 20] {
        let input = crate::calls::bytes_of(size);
        assert_eq!(
            guest.call_raw("through_host_nested", &input).unwrap(),
            input,
            "size {size}"
        );
    }
}

/// A bytes host function's error reaches the guest as an error, which the bytes export
/// passes on.
#[test]
fn bytes_host_function_errors_reach_the_guest() {
    let mut host = host_functions();
    host.register_raw("echo_bytes", |_ctx, bytes| {
        Err(HostError::new(
            2003u32,
            format!("no echo for {} bytes", bytes.len()),
        ))
    });
    let mut guest = module("host-fns")
        .prepare(&host)
        .unwrap()
        .instantiate(Log::default())
        .unwrap();
    let err = guest.call_raw("through_host", b"abc").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Guest { code, message } if *code == ErrorCode(2003) && message == "no echo for 3 bytes"),
        "{err:?}"
    );
    assert!(!guest.is_poisoned());
}

#[test]
fn reentrant_call_into_the_same_instance() {
    let mut guest = host_fns_instance();
    // reenter(n) -> host call_back(n) -> guest double(n) -> host adds 1.
    assert_eq!(guest.call::<_, u32>("reenter", &20u32).unwrap(), 41);
    // The arena was not reset under the outer call: a second round works the same.
    assert_eq!(guest.call::<_, u32>("reenter", &1u32).unwrap(), 3);
}

#[test]
fn reentrancy_is_bounded_by_max_call_depth() {
    let mut host = host_functions();
    // `call_back` re-enters `reenter` itself: an endless chain guest -> host -> guest.
    host.register("call_back", |ctx, n: u32| -> Result<u32, HostError> {
        Ok(ctx.call::<_, u32>("reenter", &n)?)
    });
    let mut guest = module("host-fns")
        .prepare(&host)
        .unwrap()
        .instantiate(Log::default())
        .unwrap();
    let err = guest.call::<_, u32>("reenter", &1u32).unwrap_err();
    // The innermost failure is the depth limit; it travels out as an error envelope
    // through every level, so the outermost caller sees a guest error carrying it.
    let text = err.to_string();
    assert!(text.contains("calls nested more than 16 deep"), "{text}");
    assert!(matches!(err.kind(), ErrorKind::Guest { .. }), "{err:?}");
}

#[test]
fn missing_host_functions_are_named() {
    let mut host = HostFunctions::<Log>::new();
    host.register(
        "add",
        |_ctx, (a, b): (u32, u32)| -> Result<u32, HostError> { Ok(a + b) },
    );
    let err = module("host-fns").prepare(&host).unwrap_err();
    match err.kind() {
        ErrorKind::MissingImports { imports } => {
            let mut imports = imports.clone();
            imports.sort();
            assert_eq!(
                imports,
                [
                    "membrane_host::always_fails",
                    "membrane_host::call_back",
                    "membrane_host::echo_bytes",
                    "membrane_host::log_line"
                ]
            );
        }
        other => panic!("expected missing imports, got {other:?}"),
    }
}

#[test]
fn a_panicking_host_function_fails_the_call_not_the_host() {
    let mut host = host_functions();
    host.register(
        "add",
        |_ctx, (a, _b): (u32, u32)| -> Result<u32, HostError> {
            if a == 7 {
                panic!("host bug on {a}");
            }
            Ok(a)
        },
    );
    let mut guest = module("host-fns")
        .prepare(&host)
        .unwrap()
        .instantiate(Log::default())
        .unwrap();
    let err = guest
        .call::<_, u32>("sum_via_host", &(7u32, 1u32))
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Host { message } if message.contains("host function `add` panicked: host bug on 7")),
        "{err:?}"
    );
    assert!(guest.is_poisoned());
    // Another instance of the same module is unaffected.
    let mut other = module("host-fns")
        .prepare(&host)
        .unwrap()
        .instantiate(Log::default())
        .unwrap();
    assert_eq!(
        other.call::<_, u32>("sum_via_host", &(1u32, 1u32)).unwrap(),
        1
    );
}

/// Where a host function's response lands (`docs/abi.md` §4), seen from a WAT guest that
/// calls `echo` with the request at 256, a response buffer `[buf, buf + cap)`, and an
/// allocation entry that hands out 0x8000: the export returns the response envelope as
/// its own output when the response lies where `expect` says, and traps otherwise.
#[test]
fn responses_land_in_the_guest_buffer_when_they_fit() {
    use membrane_codec::{Codec, CodecConfig, Flags};
    const ALLOCATED: u32 = 0x8000;
    let payload = vec![7u8; 100];
    let request = Codec::new(CodecConfig::default())
        .encode(&payload, Flags::EXPECTS_RESPONSE)
        .unwrap();
    let response_len = request.len() as u32;
    let mut host = HostFunctions::<()>::new();
    host.register_raw("echo", |_ctx, input| Ok(input.to_vec()));
    // (buffer, capacity, where the response must be)
    let cases = [
        (0x4000, response_len, 0x4000),        // fits exactly
        (0x4000, 4096, 0x4000),                // fits with room to spare
        (256, response_len, 256),              // the buffer is the request itself
        (0x4000, response_len - 1, ALLOCATED), // one byte short
        (0x4000, 0, ALLOCATED),                // no buffer
        (0, 0, ALLOCATED),                     // no buffer, null pointer
    ];
    for (buf, cap, expect) in cases {
        let escaped: String = request.iter().map(|b| format!("\\{b:02x}")).collect();
        let wat = format!(
            r#"(module
  (import "membrane_host" "echo" (func $echo (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 256) "{escaped}")
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i32 i32) (result i32) (i32.const {ALLOCATED}))
  (func (export "run") (param i32 i32) (result i64)
    (local $r i64)
    (local.set $r (call $echo (i32.const 256) (i32.const {len}) (i32.const {buf}) (i32.const {cap})))
    (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const {expect}))
      (then unreachable))
    (local.get $r)))"#,
            len = request.len()
        );
        let module = crate::support::engine()
            .load(&wat::parse_str(&wat).unwrap())
            .unwrap();
        let mut instance = module.prepare(&host).unwrap().instantiate(()).unwrap();
        let out = instance.call_raw("run", b"").unwrap_or_else(|e| {
            panic!("buffer {buf:#x}, capacity {cap}: {e}");
        });
        assert_eq!(out, payload, "buffer {buf:#x}, capacity {cap}");
    }
}

/// Typed responses and error envelopes too large for the guest SDK's response buffer
/// (1 KiB) come through the allocation entry intact.
#[test]
fn responses_larger_than_the_guest_buffer_arrive_intact() {
    let mut guest = host_fns_instance();
    let long = "z".repeat(5000);
    let seen: String = guest.call("try_failing", &long).unwrap();
    assert_eq!(seen, format!("code 2002: always_fails refuses {long:?}"));
}

/// Once a nested call has trapped, no more of the instance's code runs: a second
/// nested call made by the same host function is refused with the first call's error,
/// the guest does not resume after the host function returns, and the outer call
/// fails with the trap.
#[test]
fn no_guest_code_runs_after_a_nested_call_traps() {
    #[derive(Default)]
    struct Seen {
        marks: u32,
        second: Option<String>,
    }
    let mut host = HostFunctions::<Seen>::new();
    host.register_raw("twice", |ctx, _| {
        let _ = ctx.call_raw("trap", &[]);
        let second = ctx.call_raw("marks", &[]);
        ctx.state_mut().second = Some(format!("{second:?}"));
        Ok(Vec::new())
    })
    .register_raw("mark", |ctx, _| {
        ctx.state_mut().marks += 1;
        Ok(Vec::new())
    });
    let request = crate::hostile::envelope(0, b"");
    let call = |name: &str| {
        format!(
            "(drop (call ${name} (i32.const 256) (i32.const {}) (i32.const 0) (i32.const 0)))",
            request.len()
        )
    };
    let wasm = crate::support::wat_module(
        2,
        r#"(import "membrane_host" "twice" (func $twice (param i32 i32 i32 i32) (result i64)))
  (import "membrane_host" "mark" (func $mark (param i32 i32 i32 i32) (result i64)))"#,
        &format!(
            r#"{data}
  (func (export "run") (param i32 i32) (result i64) {twice} {mark} (i64.const 0))
  (func (export "trap") (param i32 i32) (result i64) (unreachable))
  (func (export "marks") (param i32 i32) (result i64) {mark} (i64.const 0))"#,
            data = crate::hostile::data(256, &request),
            twice = call("twice"),
            mark = call("mark"),
        ),
    );
    let mut instance = crate::support::engine()
        .load(&wasm)
        .unwrap()
        .prepare(&host)
        .unwrap()
        .instantiate(Seen::default())
        .unwrap();
    let err = instance.call_raw("run", &[]).unwrap_err();
    assert!(
        err.is_trap(&membrane_host::TrapKind::Unreachable),
        "{err:?}"
    );
    assert_eq!(instance.state().marks, 0, "guest code ran after the trap");
    let second = instance.state().second.as_deref().unwrap_or_default();
    assert!(second.contains("Unreachable"), "{second}");
    assert!(instance.is_poisoned());
}

/// A bytes host function sees the request payload as the guest sent it (here a raw
/// host function's request written by hand) and its bytes come back as the response
/// payload; a raw one sees the same bytes, as a copy.
#[test]
fn bytes_and_raw_host_functions_see_the_payload_the_guest_sent() {
    let payload: Vec<u8> = (0..=255u8).collect();
    let request = crate::hostile::envelope(0, &payload);
    let wasm = crate::support::wat_module(
        2,
        r#"(import "membrane_host" "f" (func $f (param i32 i32 i32 i32) (result i64)))"#,
        &format!(
            r#"{data}
  (func (export "run") (param i32 i32) (result i64)
    (call $f (i32.const 256) (i32.const {len}) (i32.const 0) (i32.const 0)))"#,
            data = crate::hostile::data(256, &request),
            len = request.len(),
        ),
    );
    let module = crate::support::engine().load(&wasm).unwrap();
    let mut bytes = HostFunctions::<Vec<u8>>::new();
    bytes.register_bytes("f", |seen: &mut Vec<u8>, input: &[u8]| {
        seen.extend_from_slice(input);
        Ok(input.iter().rev().copied().collect())
    });
    let mut raw = HostFunctions::<Vec<u8>>::new();
    raw.register_raw("f", |ctx, input| {
        ctx.state_mut().extend_from_slice(input);
        Ok(input.iter().rev().copied().collect())
    });
    let reversed: Vec<u8> = payload.iter().rev().copied().collect();
    for host in [bytes, raw] {
        let mut instance = module
            .prepare(&host)
            .unwrap()
            .instantiate(Vec::new())
            .unwrap();
        // `run` returns the host's response envelope as its own output.
        assert_eq!(instance.call_raw("run", &[]).unwrap(), reversed);
        assert_eq!(instance.state(), &payload);
    }
}
