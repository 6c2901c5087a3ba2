//! Fuzz target: arbitrary bytes as a guest's output, through the host's real call path.
//!
//! A small WAT guest hands back, as its output envelope, bytes the fuzzer chose: the
//! payload of the input envelope the host just wrote into guest memory (mode
//! `payload`), or any region near it, with a pointer and length the fuzzer chose
//! (mode `pointed`, reaching out-of-bounds and overflowing regions). Each input goes
//! through both ways the host reads an output: `call_raw` (copied out, checksum
//! verified while copying) and `call_with` (read in place). The host must never
//! panic, both ways must answer the same, and what `membrane_codec` answers for the
//! same bytes (the oracle); the instance must be poisoned on an ABI violation, and a
//! fresh instance must still answer correctly afterwards.
//!
//! Input layout: byte 0 chooses the mode (bit 0) and whether the checksum field is
//! recomputed before the bytes go in (bit 1), so that mutations reach the length, LZ4
//! and error-payload checks behind the CRC; the rest are the output bytes.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use membrane_codec::{Checksum, Codec, CodecConfig, Crc32Fast, HEADER_LEN};
use membrane_host::{
    AbiViolation, Engine, EngineConfig, ErrorKind, HostFunctions, Instance, InstancePre,
};

/// Outputs above this decompressed size are refused; small, so that a forged size
/// prefix cannot make every run allocate much.
const MAX_DECOMPRESSED_LEN: usize = 256 * 1024;

/// A guest whose output is whatever the fuzzer put in its input.
const GUEST: &str = r#"
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "__membrane_abi_v1"))
  ;; A bump allocator that grows memory as needed and resets at top-level calls.
  (func (export "__membrane_alloc") (param $len i32) (param $reset i32) (result i32)
    (local $ptr i32) (local $end i64) (local $have i64)
    (if (local.get $reset) (then (global.set $next (i32.const 1024))))
    (local.set $ptr (global.get $next))
    (local.set $end (i64.add (i64.extend_i32_u (local.get $ptr))
                             (i64.extend_i32_u (local.get $len))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.wrap_i64
                (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have))
                                    (i64.const 65535))
                           (i64.const 16))))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $next (i32.and (i32.add (i32.wrap_i64 (local.get $end)) (i32.const 7))
                               (i32.const -8)))
    (local.get $ptr))
  ;; Output envelope = the input's payload.
  (func (export "payload") (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.add (local.get $ptr) (i32.const 12))) (i64.const 32))
      (i64.extend_i32_u (i32.sub (local.get $len) (i32.const 12)))))
  ;; Output envelope at (payload + 8 + u32 offset, u32 length), both read from the
  ;; first 8 payload bytes; the pointer wraps like u32 arithmetic.
  (func (export "pointed") (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl
        (i64.extend_i32_u
          (i32.add (i32.add (local.get $ptr) (i32.const 20))
                   (i32.load offset=12 align=1 (local.get $ptr))))
        (i64.const 32))
      (i64.extend_i32_u (i32.load offset=16 align=1 (local.get $ptr)))))
)
"#;

fn setup() -> &'static (Engine, InstancePre<()>) {
    static SETUP: OnceLock<(Engine, InstancePre<()>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let engine = Engine::new(
            EngineConfig::default()
                .fuel(Some(1_000_000))
                .timeout(Some(Duration::from_secs(1)))
                .max_memory(64 << 20)
                .codec(CodecConfig {
                    compress_threshold: None,
                    max_decompressed_len: MAX_DECOMPRESSED_LEN,
                }),
        )
        .expect("engine");
        let wasm = wat::parse_str(GUEST).expect("guest wat");
        let pre = engine
            .load(&wasm)
            .expect("guest loads")
            .prepare(&HostFunctions::new())
            .expect("guest links");
        (engine, pre)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if control & 2 != 0 && bytes.len() >= HEADER_LEN {
        let crc = Crc32Fast.update(Crc32Fast.update(0, &bytes[..8]), &bytes[HEADER_LEN..]);
        bytes[8..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }
    let (_, pre) = setup();
    let pointed = control & 1 != 0;
    let name = if pointed { "pointed" } else { "payload" };
    // Both ways the host reads an output: copied out (`call_raw`, which verifies the
    // checksum while copying) and in place (`call_with`).
    let mut copied = pre.instantiate(()).expect("fresh instance");
    let raw = copied.call_raw(name, &bytes);
    let mut in_place = pre.instantiate(()).expect("fresh instance");
    let with = in_place.call_with(name, &bytes, <[u8]>::to_vec);
    assert_eq!(
        describe(&raw),
        describe(&with),
        "call_raw and call_with disagree"
    );
    if !pointed {
        check_against_codec(&bytes, &raw);
    }
    for (result, instance) in [(&raw, &mut copied), (&with, &mut in_place)] {
        check_poisoning(result, instance);
    }
    // A fresh instance still answers correctly.
    let good = Codec::new(CodecConfig::default())
        .encode(b"still fine", membrane_codec::Flags::NONE)
        .expect("encode");
    let mut fresh = pre.instantiate(()).expect("fresh instance");
    assert_eq!(
        fresh.call_raw("payload", &good).expect("good call"),
        b"still fine"
    );
});

/// A comparable summary of a call's result: the payload, or the error's kind (for a
/// bad envelope, the codec's rejection; which envelope the message names may differ).
fn describe(result: &Result<Vec<u8>, membrane_host::Error>) -> String {
    match result {
        Ok(payload) => format!("ok {payload:?}"),
        Err(e) => match e.kind() {
            ErrorKind::Abi(AbiViolation::BadEnvelope { error, .. }) => {
                format!("bad envelope {error:?}")
            }
            other => format!("{other:?}"),
        },
    }
}

/// Only the expected kinds, and an instance poisoned exactly when it must be.
fn check_poisoning(result: &Result<Vec<u8>, membrane_host::Error>, instance: &mut Instance<()>) {
    match result {
        Ok(_) => assert!(!instance.is_poisoned()),
        Err(e) => match e.kind() {
            ErrorKind::Guest { .. } => assert!(!instance.is_poisoned()),
            ErrorKind::Abi(AbiViolation::BadPointer { .. } | AbiViolation::BadEnvelope { .. }) => {
                assert!(instance.is_poisoned());
                let again = instance.call_raw("payload", b"").unwrap_err();
                assert!(
                    matches!(again.kind(), ErrorKind::Poisoned { .. }),
                    "{again:?}"
                );
            }
            // `pointed` with fewer than 8 payload bytes reads past the input envelope,
            // which is still inside memory, so even that does not trap.
            other => panic!("unexpected error kind for arbitrary output: {other:?}"),
        },
    }
}

/// The host must answer what the codec answers for the same bytes.
fn check_against_codec(bytes: &[u8], result: &Result<Vec<u8>, membrane_host::Error>) {
    let codec = Codec::new(CodecConfig {
        compress_threshold: None,
        max_decompressed_len: MAX_DECOMPRESSED_LEN,
    });
    let mut scratch = Vec::new();
    let expected: Result<Vec<u8>, &'static str> = match codec.decode(bytes) {
        Err(_) => Err("bad envelope"),
        Ok(envelope) => match envelope.error(&mut scratch) {
            Some(Ok(_)) => Err("guest error"),
            Some(Err(_)) => Err("bad envelope"),
            None => envelope
                .payload(&mut scratch)
                .map(<[u8]>::to_vec)
                .map_err(|_| "bad envelope"),
        },
    };
    match (expected, result) {
        (Ok(want), Ok(got)) => assert_eq!(&want, got),
        (Err("guest error"), Err(e)) => {
            assert!(matches!(e.kind(), ErrorKind::Guest { .. }), "{e:?}");
        }
        (Err("bad envelope"), Err(e)) => assert!(
            matches!(e.kind(), ErrorKind::Abi(AbiViolation::BadEnvelope { .. })),
            "{e:?}"
        ),
        (want, got) => panic!("host and codec disagree: codec {want:?}, host {got:?}"),
    }
}
