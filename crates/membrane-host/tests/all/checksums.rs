//! Where checksums are verified (`docs/abi.md` §5): the host verifies every envelope a
//! guest writes; a guest does not re-verify the envelopes the host writes into its
//! memory for the call in progress.

use membrane_codec::DecodeError;
use membrane_host::{AbiViolation, ErrorKind, HostFunctions};

use crate::support::{engine, instance};

/// The size classes of the call benches.
const SIZES: [usize; 5] = [0, 64, 1 << 10, 64 << 10, 1 << 20];

/// A guest whose `run` flips one bit of its input envelope (in the middle of the
/// payload, or of the checksum field when the payload is empty) and returns that
/// envelope as its output, with the header the host wrote. Its allocation entry hands
/// out 0x10000, growing the memory to fit.
fn bit_flipper() -> Vec<u8> {
    wat::parse_str(
        r#"(module
  (memory (export "memory") 2)
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param $len i32) (param i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.sub (i32.add (i32.shr_u (i32.add (local.get $len) (i32.const 0xffff)) (i32.const 16))
                        (i32.const 1))
               (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1))
        (then (return (i32.const 0))))))
    (i32.const 0x10000))
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $at i32)
    (local.set $at
      (if (result i32) (i32.gt_u (local.get $len) (i32.const 12))
        (then (i32.add (i32.add (local.get $ptr) (i32.const 12))
                       (i32.shr_u (i32.sub (local.get $len) (i32.const 12)) (i32.const 1))))
        (else (i32.add (local.get $ptr) (i32.const 8)))))
    (i32.store8 (local.get $at) (i32.xor (i32.load8_u (local.get $at)) (i32.const 0x10)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
)"#,
    )
    .expect("test wat")
}

/// An output envelope with one flipped bit is refused at every size, whichever way
/// the host reads it (copied out or in place).
#[test]
fn the_host_refuses_an_output_with_one_flipped_bit_at_every_size() {
    let pre = engine()
        .load(&bit_flipper())
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap();
    let checksum_mismatch = |kind: &ErrorKind| {
        matches!(
            kind,
            ErrorKind::Abi(AbiViolation::BadEnvelope {
                error: DecodeError::ChecksumMismatch { .. },
                ..
            })
        )
    };
    for size in SIZES {
        let input: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let err = pre
            .instantiate(())
            .unwrap()
            .call_raw("run", &input)
            .unwrap_err();
        assert!(
            checksum_mismatch(err.kind()),
            "{size} bytes, call_raw: {err:?}"
        );
        let err = pre
            .instantiate(())
            .unwrap()
            .call_with("run", &input, <[u8]>::len)
            .unwrap_err();
        assert!(
            checksum_mismatch(err.kind()),
            "{size} bytes, call_with: {err:?}"
        );
    }
}
/// The echo guest does not ask the host to checksum an input the host wrote: an echo
/// of any size calls the `membrane.crc32` intrinsic not once (its output is its input
/// envelope, handed back in place), while an output it writes itself is checksummed.
#[test]
fn the_guest_does_not_reverify_what_the_host_wrote() {
    let mut echo = instance("echo");
    for size in SIZES {
        let input: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let before = echo.crc32_calls();
        assert_eq!(echo.call_raw("echo", &input).unwrap(), input);
        assert_eq!(echo.crc32_calls(), before, "echo of {size} bytes");
    }
}
