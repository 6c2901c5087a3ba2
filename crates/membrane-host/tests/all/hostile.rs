//! Hostile modules (SPEC §5, `docs/security.md`): every case is one exact misbehaviour,
//! mostly written in WAT, with the error kind the host must answer.
//!
//! One checker runs each case on an engine with small limits, inside `catch_unwind`,
//! and asserts: the kind matches, the host did not panic, the case finished well
//! within a loose time bound, the instance that misbehaved is poisoned (a further
//! call answers `Poisoned`) or was never created (load, link and instantiation
//! failures), and a healthy module on the same engine, instantiated before the case,
//! still answers correctly afterwards, as does a fresh instance of it. The one call
//! case that must not poison (the depth limit, handed back to the guest as the ABI
//! says) checks instead that the instance is intact and fails the same way again.
//!
//! The table in `docs/security.md` lists the same cases with the same kinds; a test
//! below keeps the two in step.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use membrane_codec::{Checksum, CodecConfig, Crc32Fast, DecodeError, Flags, HEADER_LEN};
use membrane_host::{
    AbiViolation, Engine, EngineConfig, Error, ErrorCode, ErrorKind, HostError, HostFunctions,
    Instance, InstancePre, LimitKind, TrapKind,
};

use crate::support::guest_bytes;

// ---------------------------------------------------------------------------------
// The engines the cases run on.

/// Timeout of the `Timed` profile, and the backstop of the `Metered` one.
const TIMEOUT: Duration = Duration::from_millis(200);
/// Fuel of the `Metered` profile: tens of milliseconds of guest code.
const FUEL: u64 = 5_000_000;
/// Memory limit of both profiles.
const MAX_MEMORY: usize = 16 << 20;
/// Table limit of both profiles.
const MAX_TABLE: usize = 1_000;
/// Module size limit of both profiles (the guest examples are below 100 KiB).
const MAX_MODULE: usize = 1 << 20;
/// Re-entrant call depth limit of both profiles.
const MAX_DEPTH: u32 = 4;
/// Decompressed output limit of both profiles.
const MAX_DECOMPRESSED: usize = 1 << 20;
/// Upper bound of one case's duration: 15 times the backstop timeout of `Metered`, 150
/// times the timeout of `Timed`, so a busy machine never makes it fail, while a hang
/// (a limit not enforced at all) still does.
const CASE_TIME_BOUND: Duration = Duration::from_secs(30);

/// Which limits stop endless code in a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Fuel `FUEL`, and a generous timeout only as a backstop: loops end `OutOfFuel`.
    Metered,
    /// No fuel, timeout `TIMEOUT`: loops end `Timeout`.
    Timed,
}

/// An engine of a profile, with the healthy module prepared on it.
struct Setup {
    engine: Engine,
    host: HostFunctions<()>,
    healthy: InstancePre<()>,
}

fn setup(profile: Profile) -> &'static Setup {
    static METERED: OnceLock<Setup> = OnceLock::new();
    static TIMED: OnceLock<Setup> = OnceLock::new();
    let (cell, fuel, timeout) = match profile {
        Profile::Metered => (&METERED, Some(FUEL), TIMEOUT * 10),
        Profile::Timed => (&TIMED, None, TIMEOUT),
    };
    cell.get_or_init(|| {
        let engine = Engine::new(
            EngineConfig::default()
                .fuel(fuel)
                .timeout(Some(timeout))
                .max_memory(MAX_MEMORY)
                .max_table_elements(MAX_TABLE)
                .max_wasm_stack(128 << 10)
                .max_module_size(MAX_MODULE)
                .max_call_depth(MAX_DEPTH)
                .codec(CodecConfig {
                    compress_threshold: None,
                    max_decompressed_len: MAX_DECOMPRESSED,
                }),
        )
        .expect("engine with small limits");
        let healthy = engine
            .load(&guest_bytes("echo"))
            .expect("echo guest loads")
            .prepare(&HostFunctions::new())
            .expect("echo guest links");
        Setup {
            engine,
            host: host_functions(),
            healthy,
        }
    })
}

/// The host functions every case may import from `membrane_host`.
///
/// - `echo`: answers the request payload.
/// - `typed_echo`: the same as a typed function (postcard bytes in, bytes out).
/// - `call_back`: the request payload names a function of the calling instance; calls
///   it (re-entrantly) with that name as input and answers its output. Like a careless
///   host, it turns a failed nested call into an error envelope for the guest: the
///   host must still fail the outer call when the nested one trapped.
fn host_functions() -> HostFunctions<()> {
    let mut host = HostFunctions::new();
    host.register_raw("echo", |_ctx, input| Ok(input.to_vec()));
    host.register(
        "typed_echo",
        |_ctx, input: Vec<u8>| -> Result<Vec<u8>, HostError> { Ok(input) },
    );
    host.register_raw("call_back", |ctx, input| {
        let name = std::str::from_utf8(input).map_err(|_| HostError::from("name is not utf-8"))?;
        ctx.call_raw(name, input).map_err(HostError::from)
    });
    host
}

// ---------------------------------------------------------------------------------
// The case table.

/// Where a case's module comes from.
enum Source {
    /// WAT text, compiled by the test (`wat` crate).
    Wat(String),
    /// Raw bytes handed to the engine as they are.
    Bytes(Vec<u8>),
}

/// Which step must fail.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// `Engine::load` fails.
    Load,
    /// Loading works, `Module::prepare` fails.
    Prepare,
    /// Preparing works, `InstancePre::instantiate` fails.
    Instantiate,
    /// Instantiation works, calling this function fails and poisons the instance.
    Call(&'static str),
    /// Instantiation works, `Instance::start` (the start hook) fails and poisons it.
    Start,
    /// Instantiation works, `Instance::stop` (the stop hook) fails and poisons it.
    Stop,
}

/// The expected error kind: a label (as written in `docs/security.md`) and a matcher.
struct Expect {
    label: &'static str,
    matches: fn(&ErrorKind) -> bool,
}

macro_rules! kind {
    ($label:literal, $pattern:pat $(if $guard:expr)?) => {
        Expect {
            label: $label,
            matches: |kind: &ErrorKind| matches!(kind, $pattern $(if $guard)?),
        }
    };
}

struct Case {
    name: &'static str,
    source: Source,
    profile: Profile,
    action: Action,
    expect: Expect,
    /// Whether a failed call poisons the instance (every case but the documented
    /// exception, the depth limit handed back to the guest).
    poisons: bool,
}

fn case(name: &'static str, source: Source, action: Action, expect: Expect) -> Case {
    Case {
        name,
        source,
        profile: Profile::Metered,
        action,
        expect,
        poisons: true,
    }
}

fn timed(mut case: Case) -> Case {
    case.profile = Profile::Timed;
    case
}

/// A call case whose failure leaves the instance intact and usable.
fn not_poisoning(mut case: Case) -> Case {
    case.poisons = false;
    case
}

const RUN: Action = Action::Call("run");

// ---------------------------------------------------------------------------------
// Building hostile modules.

/// End of the 2 pages of memory of the standard module: the bump allocator hands out
/// `[0x10000, 0x20000)`, data segments live below, everything from here up is out of
/// bounds.
const MEMORY_END: u32 = 0x2_0000;

/// A correct allocation entry: a bump allocator from `HEAP` that grows memory as
/// needed, returns 0 when it cannot, and resets at top-level calls.
const BUMP_ALLOC: &str = r#"
  (global $next (mut i32) (i32.const 0x10000))
  (func $alloc (export "__membrane_alloc") (param $len i32) (param $reset i32) (result i32)
    (local $ptr i32) (local $end i64) (local $have i64)
    (if (local.get $reset) (then (global.set $next (i32.const 0x10000))))
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
"#;

/// A membrane module with `imports`, the standard memory (2 pages), version export,
/// allocation entry `alloc` and the rest of `body`.
fn module_with_alloc(imports: &str, alloc: &str, body: &str) -> Source {
    Source::Wat(format!(
        r#"(module
  {imports}
  (memory (export "memory") 2)
  (func (export "__membrane_abi_v1"))
  {alloc}
  {body}
)"#
    ))
}

/// A membrane module with a correct allocation entry.
fn module(imports: &str, body: &str) -> Source {
    module_with_alloc(imports, BUMP_ALLOC, body)
}

/// A data segment writing `bytes` at `offset`.
pub(crate) fn data(offset: u32, bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    format!(r#"(data (i32.const {offset}) "{escaped}")"#)
}

/// The `i64` an export returns for an output envelope at `ptr` of `len` bytes.
fn packed(ptr: u32, len: u32) -> i64 {
    membrane_types::pack_ptr_len(ptr, len) as i64
}

/// Where `with_ok_output` puts its valid output envelope.
const OK_AT: u32 = 1024;

/// A data segment holding a valid output envelope with payload `ok`, and the packed
/// value that returns it.
fn ok_output() -> (String, i64) {
    let bytes = envelope(0, b"ok");
    (data(OK_AT, &bytes), packed(OK_AT, bytes.len() as u32))
}

/// An envelope with any flag byte and `payload`, with a correct length and checksum.
pub(crate) fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x41, 0x49, 1, flags];
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(payload);
    seal(bytes)
}

/// `bytes` with the checksum field recomputed over bytes 0..8 and 12.., whatever they hold.
fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = Crc32Fast.update(Crc32Fast.update(0, &bytes[..8]), &bytes[HEADER_LEN..]);
    bytes[8..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A module whose `run` returns the output envelope `bytes` (placed at offset 16).
fn returns_bytes(bytes: &[u8]) -> Source {
    returns_at(&data(16, bytes), packed(16, bytes.len() as u32))
}

/// A module whose `run` returns `packed`, with `segments` in memory.
fn returns_at(segments: &str, packed: i64) -> Source {
    module(
        "",
        &format!(
            r#"{segments}
  (func (export "run") (param i32 i32) (result i64) (i64.const {packed}))"#
        ),
    )
}

/// A module whose `run` executes `code` (which must not return normally, or returns
/// the valid `ok` output if it does), after `imports`.
fn runs(imports: &str, code: &str) -> Source {
    let (ok, ok_packed) = ok_output();
    module(
        imports,
        &format!(
            r#"{ok}
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    {code}
    (i64.const {ok_packed}))"#
        ),
    )
}

/// A module whose start function executes `code`.
fn starts(imports: &str, code: &str) -> Source {
    module(
        imports,
        &format!(
            r#"(func $start {code})
  (start $start)
  (func (export "run") (param i32 i32) (result i64) (i64.const 0))"#
        ),
    )
}

/// A module whose lifecycle hook `hook` (`__membrane_start` or `__membrane_stop`) runs
/// `code`, which leaves the hook's `i64` result, with `segments` in memory.
fn hooks(hook: &str, segments: &str, code: &str) -> Source {
    module(
        "",
        &format!(
            r#"{segments}
  (func (export "{hook}") (result i64) {code})
  (func (export "run") (param i32 i32) (result i64) (i64.const 0))"#
        ),
    )
}

/// A module whose allocation entry is `alloc` and whose `run` answers `ok`.
fn allocates(imports: &str, alloc: &str) -> Source {
    let (ok, ok_packed) = ok_output();
    module_with_alloc(
        imports,
        alloc,
        &format!(
            r#"{ok}
  (func (export "run") (param i32 i32) (result i64) (i64.const {ok_packed}))"#
        ),
    )
}

/// An allocation entry that is correct at top-level calls (`reset` = 1) and runs
/// `nested` for allocations made while a call runs (responses of host functions).
fn alloc_nested(nested: &str) -> String {
    let correct = BUMP_ALLOC.replace("$alloc (export \"__membrane_alloc\")", "$bump");
    format!(
        r#"{correct}
  (func (export "__membrane_alloc") (param $len i32) (param $reset i32) (result i32)
    (if (i32.eqz (local.get $reset)) (then {nested}))
    (call $bump (local.get $len) (local.get $reset)))"#
    )
}

/// A module whose `run` calls host function `name` with the request envelope
/// `request` (placed at offset 256) and then answers `ok`, whatever it got back.
fn calls_host(name: &str, request: &[u8]) -> Source {
    runs(
        &format!(
            r#"(import "membrane_host" "{name}" (func $host (param i32 i32 i32 i32) (result i64)))"#
        ),
        &format!(
            r#"(drop (call $host (i32.const 256) (i32.const {len}) (i32.const 0) (i32.const 0)))"#,
            len = request.len()
        ),
    )
    .with_segment(&data(256, request))
}

/// A module whose `run` calls the runtime import `name` with the request envelope
/// `request` (placed at offset 256) and then answers `ok`, whatever it got back.
fn calls_runtime(name: &str, request: &[u8]) -> Source {
    runs(
        &format!(
            r#"(import "membrane_runtime" "{name}" (func $runtime (param i32 i32 i32 i32) (result i64)))"#
        ),
        &format!(
            r#"(drop (call $runtime (i32.const 256) (i32.const {len}) (i32.const 0) (i32.const 0)))"#,
            len = request.len()
        ),
    )
    .with_segment(&data(256, request))
}

/// A module whose `run` calls the service import `name` with the request envelope
/// `request` (placed at offset 256) and then answers `ok`, whatever it got back.
fn calls_service(name: &str, request: &[u8]) -> Source {
    runs(
        &format!(
            r#"(import "membrane_services" "{name}" (func $service (param i32 i32 i32 i32) (result i64)))"#
        ),
        &format!(
            r#"(drop (call $service (i32.const 256) (i32.const {len}) (i32.const 0) (i32.const 0)))"#,
            len = request.len()
        ),
    )
    .with_segment(&data(256, request))
}

/// The import of the service `name` as `$svc`.
fn import_service(name: &str) -> String {
    format!(
        r#"(import "membrane_services" "{name}" (func $svc (param i32 i32 i32 i32) (result i64)))"#
    )
}

impl Source {
    /// Adds a module-level item (a data segment, a function) to WAT source.
    fn with_segment(self, item: &str) -> Source {
        match self {
            Source::Wat(text) => {
                let end = text.rfind(')').expect("a module");
                Source::Wat(format!("{}  {item}\n)", &text[..end]))
            }
            Source::Bytes(_) => panic!("with_segment on raw bytes"),
        }
    }
}

const IMPORT_CRC32: &str =
    r#"(import "membrane" "crc32" (func $crc32 (param i32 i32 i32) (result i32)))"#;
const IMPORT_PANIC: &str = r#"(import "membrane" "panic" (func $panic (param i32 i32)))"#;
const IMPORT_ECHO: &str =
    r#"(import "membrane_host" "echo" (func $echo (param i32 i32 i32 i32) (result i64)))"#;
const IMPORT_RUNTIME_CALL: &str =
    r#"(import "membrane_runtime" "call" (func $rcall (param i32 i32 i32 i32) (result i64)))"#;
const IMPORT_CALL_BACK: &str = r#"(import "membrane_host" "call_back" (func $call_back (param i32 i32 i32 i32) (result i64)))"#;

/// A module with the standard exports and `run`, but `header` replacing the memory,
/// version and allocation exports (for load-time cases).
fn exports(header: &str) -> Source {
    Source::Wat(format!(
        r#"(module
  {header}
  (func (export "run") (param i32 i32) (result i64) (i64.const 0))
)"#
    ))
}

const ALLOC_STUB: &str =
    r#"(func (export "__membrane_alloc") (param i32 i32) (result i32) (i32.const 0))"#;

/// Valid output envelope of a compressed payload: `declared` size prefix, then `block`.
fn compressed(declared: u32, block: &[u8]) -> Vec<u8> {
    let mut payload = declared.to_le_bytes().to_vec();
    payload.extend_from_slice(block);
    envelope(Flags::COMPRESSED.bits(), &payload)
}

/// The hostile cases. Names are unique; `docs/security.md` lists them in this order.
fn cases() -> Vec<Case> {
    let good = envelope(0, b"payload");
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        bytes
    };
    let lz4_of_zeros = lz4_flex::block::compress(&vec![0u8; MAX_DECOMPRESSED]);
    let (ok, ok_packed) = ok_output();
    let request_echo = envelope(0, b"ping");
    vec![
        // --- Where the output envelope lies --------------------------------------------
        case(
            "output_pointer_outside_memory",
            returns_at("", packed(MEMORY_END + 0x1_0000, 12)),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "output_length_outside_memory",
            returns_at(&ok, packed(OK_AT, MEMORY_END)),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "output_ends_one_byte_past_memory",
            returns_at("", packed(MEMORY_END - 11, 12)),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "output_pointer_plus_length_overflows_u32",
            returns_at("", packed(0xFFFF_FFF0, 0x20)),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "output_pointer_and_length_all_ones",
            returns_at("", -1),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        // --- What the output envelope holds --------------------------------------------
        case(
            "output_empty",
            returns_at("", packed(16, 0)),
            RUN,
            kind!(
                "Abi(BadEnvelope(TooShort))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::TooShort { .. }, .. })
            ),
        ),
        case(
            "output_shorter_than_header",
            returns_bytes(&good[..11]),
            RUN,
            kind!(
                "Abi(BadEnvelope(TooShort))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::TooShort { .. }, .. })
            ),
        ),
        case(
            "output_bad_magic",
            returns_bytes(&seal(with(&|b| b[0] = b'A' + 1))),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadMagic))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadMagic { .. }, .. })
            ),
        ),
        case(
            "output_bad_version",
            returns_bytes(&seal(with(&|b| b[2] = 2))),
            RUN,
            kind!(
                "Abi(BadEnvelope(UnsupportedVersion))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::UnsupportedVersion { found: 2 },
                    ..
                })
            ),
        ),
        case(
            "output_reserved_flag_bits",
            returns_bytes(&seal(with(&|b| b[3] = 0x80))),
            RUN,
            kind!(
                "Abi(BadEnvelope(ReservedFlags))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::ReservedFlags { .. },
                    ..
                })
            ),
        ),
        case(
            "output_length_shorter_than_payload",
            returns_bytes(&seal(with(&|b| b[4] = 3))),
            RUN,
            kind!(
                "Abi(BadEnvelope(LengthMismatch))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::LengthMismatch { .. },
                    ..
                })
            ),
        ),
        case(
            "output_length_longer_than_payload",
            returns_bytes(&seal(with(&|b| b[4] = 8))),
            RUN,
            kind!(
                "Abi(BadEnvelope(LengthMismatch))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::LengthMismatch { .. },
                    ..
                })
            ),
        ),
        case(
            "output_huge_claimed_length",
            returns_bytes(&seal(with(&|b| b[4..8].copy_from_slice(&u32::MAX.to_le_bytes())))),
            RUN,
            kind!(
                "Abi(BadEnvelope(LengthMismatch))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::LengthMismatch { declared: u32::MAX, .. },
                    ..
                })
            ),
        ),
        case(
            "output_bad_checksum",
            returns_bytes(&with(&|b| b[8] ^= 1)),
            RUN,
            kind!(
                "Abi(BadEnvelope(ChecksumMismatch))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::ChecksumMismatch { .. },
                    ..
                })
            ),
        ),
        case(
            "output_checksum_of_payload_only",
            returns_bytes(&with(&|b| {
                let crc = Crc32Fast.update(0, b"payload");
                b[8..12].copy_from_slice(&crc.to_le_bytes());
            })),
            RUN,
            kind!(
                "Abi(BadEnvelope(ChecksumMismatch))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::ChecksumMismatch { .. },
                    ..
                })
            ),
        ),
        case(
            "output_encrypted",
            returns_bytes(&envelope(Flags::ENCRYPTED.bits(), b"secret")),
            RUN,
            kind!(
                "Abi(BadEnvelope(Encrypted))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::Encrypted, .. })
            ),
        ),
        case(
            "output_lz4_bomb_declares_1_gib",
            returns_bytes(&compressed(1 << 30, &lz4_of_zeros)),
            RUN,
            kind!(
                "Abi(BadEnvelope(DecompressedTooLarge))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::DecompressedTooLarge { .. },
                    ..
                })
            ),
        ),
        case(
            "output_lz4_block_expands_past_declared_size",
            returns_bytes(&compressed(1000, &lz4_of_zeros)),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::BadCompressedBlock,
                    ..
                })
            ),
        ),
        case(
            "output_lz4_block_garbage",
            returns_bytes(&compressed(64, &[0xF0, 0xFF, 0xFF, 0xFF, 0x07, 0x00])),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::BadCompressedBlock,
                    ..
                })
            ),
        ),
        case(
            "output_compressed_without_size_prefix",
            returns_bytes(&envelope(Flags::COMPRESSED.bits(), &[1, 2])),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::BadCompressedBlock,
                    ..
                })
            ),
        ),
        case(
            "output_error_payload_without_code",
            returns_bytes(&envelope(Flags::ERROR.bits(), &[7, 0])),
            RUN,
            kind!(
                "Abi(BadEnvelope(MalformedErrorPayload))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::MalformedErrorPayload,
                    ..
                })
            ),
        ),
        case(
            "output_error_message_not_utf8",
            returns_bytes(&envelope(Flags::ERROR.bits(), &[7, 0, 0, 0, 0xFF, 0xFE])),
            RUN,
            kind!(
                "Abi(BadEnvelope(MalformedErrorPayload))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::MalformedErrorPayload,
                    ..
                })
            ),
        ),
        // --- Traps while producing output ------------------------------------------------
        case(
            "trap_while_writing_output",
            runs(
                "",
                r#"(i32.store (i32.const 16) (i32.const 0x00014941))
    (unreachable)"#,
            ),
            RUN,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "store_outside_memory_while_writing_output",
            runs(
                "",
                r#"(i32.store (i32.const 16) (i32.const 0x00014941))
    (i32.store (i32.const 0x1fffe) (i32.const 0))"#,
            ),
            RUN,
            kind!("Trap(MemoryOutOfBounds)", ErrorKind::Trap(TrapKind::MemoryOutOfBounds)),
        ),
        case(
            "integer_division_by_zero",
            runs("", "(drop (i32.div_u (local.get $len) (i32.const 0)))"),
            RUN,
            kind!("Trap(Arithmetic)", ErrorKind::Trap(TrapKind::Arithmetic(_))),
        ),
        case(
            "indirect_call_to_null",
            runs("", "(call_indirect (i32.const 0))")
                .with_segment("(table 1 funcref)"),
            RUN,
            kind!("Trap(IndirectCall)", ErrorKind::Trap(TrapKind::IndirectCall(_))),
        ),
        // --- The allocation entry --------------------------------------------------------
        case(
            "alloc_returns_zero",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32) (i32.const 0))"#,
            ),
            RUN,
            kind!("Abi(AllocFailed)", ErrorKind::Abi(AbiViolation::AllocFailed { .. })),
        ),
        case(
            "alloc_returns_pointer_outside_memory",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32)
    (i32.const 0x30000))"#,
            ),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "alloc_returns_region_one_byte_past_memory",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param $len i32) (param i32) (result i32)
    (i32.add (i32.sub (i32.shl (memory.size) (i32.const 16)) (local.get $len)) (i32.const 1)))"#,
            ),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "alloc_returns_pointer_overflowing_u32",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32)
    (i32.const 0xFFFFFFF8))"#,
            ),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "alloc_traps",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32) (unreachable))"#,
            ),
            RUN,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "alloc_loops_forever_metered",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32)
    (loop $l (br $l)) (i32.const 0))"#,
            ),
            RUN,
            kind!("Trap(OutOfFuel)", ErrorKind::Trap(TrapKind::OutOfFuel)),
        ),
        timed(case(
            "alloc_loops_forever_timed",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32)
    (loop $l (br $l)) (i32.const 0))"#,
            ),
            RUN,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        case(
            "alloc_grows_memory_past_limit",
            allocates(
                "",
                r#"(func (export "__membrane_alloc") (param i32 i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1))
      (then (return (i32.const 0))))
    (i32.const 0x10000))"#,
            ),
            RUN,
            kind!("Limit(Memory)", ErrorKind::Limit(LimitKind::Memory { .. })),
        ),
        case(
            "alloc_calls_a_host_function_that_allocates",
            allocates(
                IMPORT_ECHO,
                &format!(
                    r#"{request}
  (func (export "__membrane_alloc") (param i32 i32) (result i32)
    (drop (call $echo (i32.const 256) (i32.const {len}) (i32.const 0) (i32.const 0)))
    (i32.const 0x10000))"#,
                    request = data(256, &request_echo),
                    len = request_echo.len()
                ),
            ),
            RUN,
            kind!("Trap(StackOverflow)", ErrorKind::Trap(TrapKind::StackOverflow)),
        ),
        // --- Host functions and intrinsics called with bad arguments ---------------------
        case(
            "host_fn_request_outside_memory",
            runs(IMPORT_ECHO, "(drop (call $echo (i32.const 0x1fff0) (i32.const 0x20) (i32.const 0) (i32.const 0)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "host_fn_request_pointer_plus_length_overflows_u32",
            runs(IMPORT_ECHO, "(drop (call $echo (i32.const -16) (i32.const 32) (i32.const 0) (i32.const 0)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "host_fn_response_buffer_outside_memory",
            runs(
                IMPORT_ECHO,
                &format!(
                    "(drop (call $echo (i32.const 256) (i32.const {}) (i32.const 0x1fff0) (i32.const 0x20)))",
                    request_echo.len()
                ),
            )
            .with_segment(&data(256, &request_echo)),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "host_fn_response_buffer_pointer_plus_capacity_overflows_u32",
            runs(
                IMPORT_ECHO,
                &format!(
                    "(drop (call $echo (i32.const 256) (i32.const {}) (i32.const -16) (i32.const 32)))",
                    request_echo.len()
                ),
            )
            .with_segment(&data(256, &request_echo)),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "host_fn_request_not_an_envelope",
            calls_host("echo", b"not an envelope at all"),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadMagic))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadMagic { .. }, .. })
            ),
        ),
        case(
            "host_fn_request_lz4_garbage_raw",
            calls_host("echo", &compressed(100, &[0xff; 16])),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadCompressedBlock, .. })
            ),
        ),
        case(
            "host_fn_request_lz4_garbage_typed",
            calls_host("typed_echo", &compressed(100, &[0xff; 16])),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadCompressedBlock, .. })
            ),
        ),
        case(
            "host_fn_response_alloc_returns_zero",
            module_with_alloc(IMPORT_ECHO, &alloc_nested("(return (i32.const 0))"), "")
                .with_segment(&data(256, &request_echo))
                .with_segment(&ok)
                .with_segment(&format!(
                    r#"(func (export "run") (param i32 i32) (result i64)
    (drop (call $echo (i32.const 256) (i32.const {}) (i32.const 0) (i32.const 0)))
    (i64.const {ok_packed}))"#,
                    request_echo.len()
                )),
            RUN,
            kind!("Abi(AllocFailed)", ErrorKind::Abi(AbiViolation::AllocFailed { .. })),
        ),
        case(
            "host_fn_response_alloc_outside_memory",
            module_with_alloc(IMPORT_ECHO, &alloc_nested("(return (i32.const 0x7fff0000))"), "")
                .with_segment(&data(256, &request_echo))
                .with_segment(&ok)
                .with_segment(&format!(
                    r#"(func (export "run") (param i32 i32) (result i64)
    (drop (call $echo (i32.const 256) (i32.const {}) (i32.const 0) (i32.const 0)))
    (i64.const {ok_packed}))"#,
                    request_echo.len()
                )),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "crc32_region_outside_memory",
            runs(IMPORT_CRC32, "(drop (call $crc32 (i32.const 0) (i32.const 0x1ff00) (i32.const 0x1000)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "crc32_region_overflows_u32",
            runs(IMPORT_CRC32, "(drop (call $crc32 (i32.const 0) (i32.const -1) (i32.const -1)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        // The intrinsic's work is charged to fuel and stopped by the deadline: a loop
        // of checksums over the whole (grown) memory ends like any endless loop.
        case(
            "crc32_over_all_memory_forever_metered",
            runs(
                IMPORT_CRC32,
                &format!(
                    r#"(drop (memory.grow (i32.const {grow})))
    (loop $l
      (drop (call $crc32 (i32.const 0) (i32.const 0) (i32.shl (memory.size) (i32.const 16))))
      (br $l))"#,
                    grow = MAX_MEMORY / 65536 - 2
                ),
            ),
            RUN,
            kind!("Trap(OutOfFuel)", ErrorKind::Trap(TrapKind::OutOfFuel)),
        ),
        timed(case(
            "crc32_over_all_memory_forever_timed",
            runs(
                IMPORT_CRC32,
                &format!(
                    r#"(drop (memory.grow (i32.const {grow})))
    (loop $l
      (drop (call $crc32 (i32.const 0) (i32.const 0) (i32.shl (memory.size) (i32.const 16))))
      (br $l))"#,
                    grow = MAX_MEMORY / 65536 - 2
                ),
            ),
            RUN,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        timed(case(
            "memory_fill_over_all_memory_forever_timed",
            runs(
                "",
                &format!(
                    r#"(drop (memory.grow (i32.const {grow})))
    (loop $l
      (memory.fill (i32.const 0) (i32.const 7) (i32.shl (memory.size) (i32.const 16)))
      (br $l))"#,
                    grow = MAX_MEMORY / 65536 - 2
                ),
            ),
            RUN,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        case(
            "panic_message_outside_memory",
            runs(
                IMPORT_PANIC,
                "(call $panic (i32.const 0x7fffff00) (i32.const 64)) (unreachable)",
            ),
            RUN,
            kind!("Panic", ErrorKind::Panic { message } if message.contains("unreadable")),
        ),
        // --- Re-entrant calls ------------------------------------------------------------
        // The depth limit refuses the innermost call before it runs; `call_back` hands
        // the refusal to the guest as an error envelope, and each level returns what
        // it got, as a guest propagating errors does (`docs/abi.md` §6). Nothing broke,
        // so the instance is not poisoned.
        not_poisoning(case(
            "reentrant_call_chain_without_end",
            module(
                IMPORT_CALL_BACK,
                r#"(func (export "run") (param i32 i32) (result i64)
    (call $call_back (i32.const 256) (i32.const 15) (i32.const 0) (i32.const 0)))"#,
            )
            .with_segment(&data(256, &envelope(0, b"run"))),
            RUN,
            kind!(
                "Guest",
                ErrorKind::Guest { code, message }
                    if *code == ErrorCode::HOST_FUNCTION_FAILED
                        && message.contains(&format!("calls nested more than {MAX_DEPTH} deep"))
            ),
        )),
        case(
            "nested_call_traps_and_the_host_swallows_it",
            runs(IMPORT_CALL_BACK, "(drop (call $call_back (i32.const 256) (i32.const 16) (i32.const 0) (i32.const 0)))")
                .with_segment(&data(256, &envelope(0, b"trap")))
                .with_segment(r#"(func (export "trap") (param i32 i32) (result i64) (unreachable))"#),
            RUN,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "nested_call_returns_a_bad_envelope_and_the_host_swallows_it",
            runs(
                IMPORT_CALL_BACK,
                "(drop (call $call_back (i32.const 256) (i32.const 15) (i32.const 0) (i32.const 0)))",
            )
            .with_segment(&data(256, &envelope(0, b"bad")))
            .with_segment(&data(512, &seal(with(&|b| b[1] = 0))))
            .with_segment(&format!(
                r#"(func (export "bad") (param i32 i32) (result i64) (i64.const {}))"#,
                packed(512, good.len() as u32)
            )),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadMagic))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadMagic { .. }, .. })
            ),
        ),
        case(
            "host_callback_loops_forever_metered",
            runs(IMPORT_CALL_BACK, "(drop (call $call_back (i32.const 256) (i32.const 16) (i32.const 0) (i32.const 0)))")
                .with_segment(&data(256, &envelope(0, b"spin")))
                .with_segment(r#"(func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))"#),
            RUN,
            kind!("Trap(OutOfFuel)", ErrorKind::Trap(TrapKind::OutOfFuel)),
        ),
        timed(case(
            "host_callback_loops_forever_timed",
            runs(IMPORT_CALL_BACK, "(drop (call $call_back (i32.const 256) (i32.const 16) (i32.const 0) (i32.const 0)))")
                .with_segment(&data(256, &envelope(0, b"spin")))
                .with_segment(r#"(func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))"#),
            RUN,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        // --- Resource bombs --------------------------------------------------------------
        case(
            "memory_grow_bomb",
            runs(
                "",
                r#"(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (unreachable)"#,
            ),
            RUN,
            kind!("Limit(Memory)", ErrorKind::Limit(LimitKind::Memory { .. })),
        ),
        case(
            "memory_grow_to_4_gib_at_once",
            runs(
                "",
                r#"(if (i32.eq (memory.grow (i32.const 0xfffe)) (i32.const -1)) (then (unreachable)))"#,
            ),
            RUN,
            kind!("Limit(Memory)", ErrorKind::Limit(LimitKind::Memory { .. })),
        ),
        case(
            "table_grow_bomb",
            runs(
                "",
                r#"(loop $l
      (br_if $l (i32.ne (table.grow $t (ref.null func) (i32.const 100)) (i32.const -1))))
    (unreachable)"#,
            )
            .with_segment("(table $t 1 funcref)"),
            RUN,
            kind!("Limit(Table)", ErrorKind::Limit(LimitKind::Table { .. })),
        ),
        // A refused growth the guest handles and goes on from does not name what ends
        // the call later: that is reported as what it is.
        case(
            "memory_grow_refused_then_divides_by_zero",
            runs(
                "",
                "(drop (memory.grow (i32.const 1000)))
    (drop (i32.div_u (i32.const 1) (i32.sub (memory.size) (memory.size))))",
            ),
            RUN,
            kind!(
                "Trap(Arithmetic)",
                ErrorKind::Trap(TrapKind::Arithmetic("integer division by zero"))
            ),
        ),
        case(
            "memory_grow_refused_then_panics",
            runs(
                IMPORT_PANIC,
                "(drop (memory.grow (i32.const 1000)))
    (call $panic (i32.const 256) (i32.const 4))
    (unreachable)",
            )
            .with_segment(&data(256, b"oops")),
            RUN,
            kind!("Panic", ErrorKind::Panic { message } if message == "oops"),
        ),
        case(
            "memory_grow_refused_then_crc32_then_unreachable",
            runs(
                IMPORT_CRC32,
                "(drop (memory.grow (i32.const 1000)))
    (drop (call $crc32 (i32.const 0) (i32.const 0) (i32.const 16)))
    (unreachable)",
            ),
            RUN,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "memory_grow_refused_then_grows_then_unreachable",
            runs(
                "",
                "(drop (memory.grow (i32.const 1000)))
    (drop (memory.grow (i32.const 1)))
    (unreachable)",
            ),
            RUN,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "table_grow_refused_then_divides_by_zero",
            runs(
                "",
                "(drop (table.grow $t (ref.null func) (i32.const 100000)))
    (drop (i32.div_u (i32.const 1) (i32.sub (memory.size) (memory.size))))",
            )
            .with_segment("(table $t 1 funcref)"),
            RUN,
            kind!(
                "Trap(Arithmetic)",
                ErrorKind::Trap(TrapKind::Arithmetic("integer division by zero"))
            ),
        ),
        case(
            "unbounded_recursion",
            runs("", "(drop (call $deep (i64.const 0)))").with_segment(
                r#"(func $deep (param $n i64) (result i64)
    (i64.add (call $deep (i64.add (local.get $n) (i64.const 1))) (local.get $n)))"#,
            ),
            RUN,
            kind!("Trap(StackOverflow)", ErrorKind::Trap(TrapKind::StackOverflow)),
        ),
        case(
            "endless_loop_metered",
            runs("", "(loop $l (br $l))"),
            RUN,
            kind!("Trap(OutOfFuel)", ErrorKind::Trap(TrapKind::OutOfFuel)),
        ),
        timed(case(
            "endless_loop_timed",
            runs("", "(loop $l (br $l))"),
            RUN,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        // --- The start function and instantiation ----------------------------------------
        case(
            "start_loops_forever_metered",
            starts("", "(loop $l (br $l))"),
            Action::Instantiate,
            kind!("Trap(OutOfFuel)", ErrorKind::Trap(TrapKind::OutOfFuel)),
        ),
        timed(case(
            "start_loops_forever_timed",
            starts("", "(loop $l (br $l))"),
            Action::Instantiate,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        case(
            "start_traps",
            starts("", "(unreachable)"),
            Action::Instantiate,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "start_grows_memory_past_limit",
            starts(
                "",
                r#"(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (unreachable)"#,
            ),
            Action::Instantiate,
            kind!("Limit(Memory)", ErrorKind::Limit(LimitKind::Memory { .. })),
        ),
        case(
            "start_calls_a_host_function",
            starts(IMPORT_ECHO, "(drop (call $echo (i32.const 256) (i32.const 16) (i32.const 0) (i32.const 0)))")
                .with_segment(&data(256, &request_echo)),
            Action::Instantiate,
            kind!(
                "Abi(ImportDuringStart)",
                ErrorKind::Abi(AbiViolation::ImportDuringStart { .. })
            ),
        ),
        case(
            "start_calls_crc32",
            starts(IMPORT_CRC32, "(drop (call $crc32 (i32.const 0) (i32.const 0) (i32.const 16)))"),
            Action::Instantiate,
            kind!(
                "Abi(ImportDuringStart)",
                ErrorKind::Abi(AbiViolation::ImportDuringStart { .. })
            ),
        ),
        case(
            "start_panics_with_garbage_message",
            starts(IMPORT_PANIC, "(call $panic (i32.const -1) (i32.const -1)) (unreachable)"),
            Action::Instantiate,
            kind!("Panic", ErrorKind::Panic { .. }),
        ),
        // --- Lifecycle hooks (`docs/abi.md` §8) -------------------------------------------
        case(
            "start_hook_error_outside_memory",
            hooks("__membrane_start", "", &format!("(i64.const {})", packed(MEMORY_END - 4, 16))),
            Action::Start,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "start_hook_returns_an_output_envelope",
            hooks("__membrane_start", &ok, &format!("(i64.const {ok_packed})")),
            Action::Start,
            kind!(
                "Abi(HookResult)",
                ErrorKind::Abi(AbiViolation::HookResult { hook: "__membrane_start" })
            ),
        ),
        case(
            "start_hook_error_payload_too_short",
            hooks(
                "__membrane_start",
                &data(16, &envelope(Flags::ERROR.bits(), b"\x01\x02")),
                &format!("(i64.const {})", packed(16, HEADER_LEN as u32 + 2)),
            ),
            Action::Start,
            kind!(
                "Abi(BadEnvelope(MalformedErrorPayload))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::MalformedErrorPayload,
                    ..
                })
            ),
        ),
        case(
            "stop_hook_error_bad_checksum",
            hooks(
                "__membrane_stop",
                &data(16, &{
                    let mut bytes = envelope(Flags::ERROR.bits(), b"\xe8\x03\0\0no");
                    bytes[HEADER_LEN + 4] ^= 1;
                    bytes
                }),
                &format!("(i64.const {})", packed(16, HEADER_LEN as u32 + 6)),
            ),
            Action::Stop,
            kind!(
                "Abi(BadEnvelope(ChecksumMismatch))",
                ErrorKind::Abi(AbiViolation::BadEnvelope {
                    error: DecodeError::ChecksumMismatch { .. },
                    ..
                })
            ),
        ),
        case(
            "start_hook_loops_forever_metered",
            hooks("__membrane_start", "", "(loop $l (br $l)) (i64.const 0)"),
            Action::Start,
            kind!("Trap(OutOfFuel)", ErrorKind::Trap(TrapKind::OutOfFuel)),
        ),
        timed(case(
            "stop_hook_loops_forever_timed",
            hooks("__membrane_stop", "", "(loop $l (br $l)) (i64.const 0)"),
            Action::Stop,
            kind!("Trap(Timeout)", ErrorKind::Trap(TrapKind::Timeout)),
        )),
        case(
            "stop_hook_traps",
            hooks("__membrane_stop", "", "(unreachable)"),
            Action::Stop,
            kind!("Trap(Unreachable)", ErrorKind::Trap(TrapKind::Unreachable)),
        ),
        case(
            "stop_hook_takes_a_parameter",
            hooks("__membrane_start", "", "(i64.const 0)").with_segment(
                r#"(func (export "__membrane_stop") (param i32) (result i64) (i64.const 0))"#,
            ),
            Action::Load,
            kind!(
                "Abi(WrongExportType)",
                ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "__membrane_stop"
            ),
        ),
        case(
            "stop_hook_is_a_global",
            module("", r#"(global (export "__membrane_stop") i64 (i64.const 0))"#),
            Action::Load,
            kind!(
                "Abi(WrongExportType)",
                ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "__membrane_stop"
            ),
        ),
        case(
            "initial_memory_over_limit",
            exports(&format!(
                r#"(memory (export "memory") {pages})
  (func (export "__membrane_abi_v1"))
  {ALLOC_STUB}"#,
                pages = MAX_MEMORY / 65536 + 1
            )),
            Action::Load,
            kind!("Limit(Memory)", ErrorKind::Limit(LimitKind::Memory { .. })),
        ),
        case(
            "initial_table_over_limit",
            module("", &format!("(table {} funcref)", MAX_TABLE + 1)),
            Action::Load,
            kind!("Limit(Table)", ErrorKind::Limit(LimitKind::Table { .. })),
        ),
        case(
            "data_segment_outside_memory",
            module("", &data(MEMORY_END - 2, b"four")),
            Action::Instantiate,
            kind!("Trap(MemoryOutOfBounds)", ErrorKind::Trap(TrapKind::MemoryOutOfBounds)),
        ),
        case(
            "two_memories",
            module("", "(memory $second 1)"),
            Action::Load,
            kind!("Limit(Memories)", ErrorKind::Limit(LimitKind::Memories { count: 2, limit: 1 })),
        ),
        case(
            "many_tables",
            module("", "(table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref)"),
            Action::Load,
            kind!("Limit(Tables)", ErrorKind::Limit(LimitKind::Tables { count: 5, limit: 4 })),
        ),
        // --- Exports -----------------------------------------------------------------------
        case(
            "wrongly_typed_guest_function_called",
            module("", r#"(func (export "run") (param i32) (result i32) (i32.const 0))"#),
            RUN,
            kind!(
                "Abi(WrongExportType)",
                ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "run"
            ),
        ),
        case(
            "no_abi_version_export",
            exports(&format!(r#"(memory (export "memory") 1) {ALLOC_STUB}"#)),
            Action::Load,
            kind!("Abi(NotMembrane)", ErrorKind::Abi(AbiViolation::NotMembrane)),
        ),
        case(
            "abi_version_2",
            exports(&format!(
                r#"(memory (export "memory") 1) (func (export "__membrane_abi_v2")) {ALLOC_STUB}"#
            )),
            Action::Load,
            kind!(
                "Abi(VersionMismatch)",
                ErrorKind::Abi(AbiViolation::VersionMismatch { module: 2, host: 1 })
            ),
        ),
        case(
            "abi_version_not_a_number",
            exports(&format!(
                r#"(memory (export "memory") 1) (func (export "__membrane_abi_vX")) {ALLOC_STUB}"#
            )),
            Action::Load,
            kind!("Abi(WrongExportType)", ErrorKind::Abi(AbiViolation::WrongExportType { .. })),
        ),
        case(
            "two_abi_versions",
            exports(&format!(
                r#"(memory (export "memory") 1) (func (export "__membrane_abi_v1"))
  (func (export "__membrane_abi_v3")) {ALLOC_STUB}"#
            )),
            Action::Load,
            kind!("Abi(WrongExportType)", ErrorKind::Abi(AbiViolation::WrongExportType { .. })),
        ),
        case(
            "missing_memory_export",
            exports(&format!(r#"(memory 1) (func (export "__membrane_abi_v1")) {ALLOC_STUB}"#)),
            Action::Load,
            kind!(
                "Abi(MissingExport)",
                ErrorKind::Abi(AbiViolation::MissingExport { name }) if name == "memory"
            ),
        ),
        case(
            "memory_export_is_a_function",
            exports(&format!(
                r#"(memory 1) (func (export "memory")) (func (export "__membrane_abi_v1")) {ALLOC_STUB}"#
            )),
            Action::Load,
            kind!(
                "Abi(WrongExportType)",
                ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "memory"
            ),
        ),
        case(
            "memory_export_is_64_bit",
            exports(&format!(
                r#"(memory (export "memory") i64 1) (func (export "__membrane_abi_v1")) {ALLOC_STUB}"#
            )),
            Action::Load,
            kind!(
                "Abi(WrongExportType)",
                ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "memory"
            ),
        ),
        case(
            "missing_alloc_export",
            exports(r#"(memory (export "memory") 1) (func (export "__membrane_abi_v1"))"#),
            Action::Load,
            kind!(
                "Abi(MissingExport)",
                ErrorKind::Abi(AbiViolation::MissingExport { name }) if name == "__membrane_alloc"
            ),
        ),
        case(
            "alloc_export_wrongly_typed",
            exports(
                r#"(memory (export "memory") 1) (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i64) (result i64) (i64.const 0))"#,
            ),
            Action::Load,
            kind!(
                "Abi(WrongExportType)",
                ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "__membrane_alloc"
            ),
        ),
        // --- Imports -------------------------------------------------------------------------
        case(
            "imports_the_host_does_not_provide",
            module(
                r#"(import "env" "abort" (func))
  (import "membrane" "exit" (func (param i32)))
  (import "membrane_host" "launch_missiles" (func (param i32 i32 i32 i32) (result i64)))
  (import "membrane_host" "echo" (func (param i32 i32 i32 i32) (result i64)))"#,
                "",
            ),
            Action::Prepare,
            kind!(
                "MissingImports",
                ErrorKind::MissingImports { imports }
                    if imports == &["env::abort", "membrane::exit", "membrane_host::launch_missiles"]
            ),
        ),
        case(
            "imports_its_memory",
            Source::Wat(format!(
                r#"(module (import "env" "memory" (memory 1)) (export "memory" (memory 0))
  (func (export "__membrane_abi_v1")) {ALLOC_STUB})"#
            )),
            Action::Prepare,
            kind!(
                "MissingImports",
                ErrorKind::MissingImports { imports } if imports == &["env::memory"]
            ),
        ),
        case(
            "intrinsic_imported_with_wrong_type",
            module(r#"(import "membrane" "crc32" (func (param i64) (result i64)))"#, ""),
            Action::Prepare,
            kind!(
                "Abi(WrongImportType)",
                ErrorKind::Abi(AbiViolation::WrongImportType { import, .. }) if import == "membrane::crc32"
            ),
        ),
        case(
            "runtime_call_request_outside_memory",
            runs(IMPORT_RUNTIME_CALL, "(drop (call $rcall (i32.const 0x1fff0) (i32.const 0x20) (i32.const 0) (i32.const 0)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "runtime_call_response_buffer_outside_memory",
            runs(IMPORT_RUNTIME_CALL, "(drop (call $rcall (i32.const 0) (i32.const 12) (i32.const 0x1fff0) (i32.const 0x20)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "runtime_call_request_not_an_envelope",
            calls_runtime("call", b"not an envelope at all"),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadMagic))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadMagic { .. }, .. })
            ),
        ),
        case(
            "runtime_callable_request_lz4_garbage",
            calls_runtime("call_callable", &compressed(100, &[0xff; 16])),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadCompressedBlock, .. })
            ),
        ),
        case(
            "runtime_context_request_pointer_plus_length_overflows_u32",
            runs(
                r#"(import "membrane_runtime" "context" (func $ctx (param i32 i32 i32 i32) (result i64)))"#,
                "(drop (call $ctx (i32.const -16) (i32.const 32) (i32.const 0) (i32.const 0)))",
            ),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "runtime_import_with_wrong_type",
            module(r#"(import "membrane_runtime" "call" (func (param i32 i32) (result i64)))"#, ""),
            Action::Prepare,
            kind!(
                "Abi(WrongImportType)",
                ErrorKind::Abi(AbiViolation::WrongImportType { import, .. }) if import == "membrane_runtime::call"
            ),
        ),
        case(
            "runtime_import_that_does_not_exist",
            module(r#"(import "membrane_runtime" "spawn" (func (param i32 i32 i32 i32) (result i64)))"#, ""),
            Action::Prepare,
            kind!(
                "MissingImports",
                ErrorKind::MissingImports { imports } if imports == &["membrane_runtime::spawn"]
            ),
        ),
        case(
            "service_log_request_outside_memory",
            runs(&import_service("log"), "(drop (call $svc (i32.const 0x1fff0) (i32.const 0x20) (i32.const 0) (i32.const 0)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "service_kv_get_response_buffer_outside_memory",
            runs(&import_service("kv_get"), "(drop (call $svc (i32.const 0) (i32.const 12) (i32.const 0x1fff0) (i32.const 0x20)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "service_bus_send_request_not_an_envelope",
            calls_service("bus_send", b"not an envelope at all"),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadMagic))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadMagic { .. }, .. })
            ),
        ),
        case(
            "service_random_request_lz4_garbage",
            calls_service("random", &compressed(100, &[0xff; 16])),
            RUN,
            kind!(
                "Abi(BadEnvelope(BadCompressedBlock))",
                ErrorKind::Abi(AbiViolation::BadEnvelope { error: DecodeError::BadCompressedBlock, .. })
            ),
        ),
        case(
            "service_emit_request_pointer_plus_length_overflows_u32",
            runs(&import_service("emit"), "(drop (call $svc (i32.const -16) (i32.const 32) (i32.const 0) (i32.const 0)))"),
            RUN,
            kind!("Abi(BadPointer)", ErrorKind::Abi(AbiViolation::BadPointer { .. })),
        ),
        case(
            "service_import_with_wrong_type",
            module(r#"(import "membrane_services" "kv_put" (func (param i32 i32) (result i64)))"#, ""),
            Action::Prepare,
            kind!(
                "Abi(WrongImportType)",
                ErrorKind::Abi(AbiViolation::WrongImportType { import, .. }) if import == "membrane_services::kv_put"
            ),
        ),
        case(
            "service_import_that_does_not_exist",
            module(r#"(import "membrane_services" "exec" (func (param i32 i32 i32 i32) (result i64)))"#, ""),
            Action::Prepare,
            kind!(
                "MissingImports",
                ErrorKind::MissingImports { imports } if imports == &["membrane_services::exec"]
            ),
        ),
        case(
            "host_fn_imported_with_wrong_type",
            module(r#"(import "membrane_host" "echo" (func (param i32) (result i32)))"#, ""),
            Action::Prepare,
            kind!(
                "Abi(WrongImportType)",
                ErrorKind::Abi(AbiViolation::WrongImportType { import, .. }) if import == "membrane_host::echo"
            ),
        ),
        case(
            "host_fn_imported_as_a_global",
            module(r#"(import "membrane_host" "echo" (global i32))"#, ""),
            Action::Prepare,
            kind!(
                "Abi(WrongImportType)",
                ErrorKind::Abi(AbiViolation::WrongImportType { import, .. }) if import == "membrane_host::echo"
            ),
        ),
        // --- Not a module at all -----------------------------------------------------------
        case(
            "empty_bytes",
            Source::Bytes(Vec::new()),
            Action::Load,
            kind!("InvalidModule", ErrorKind::InvalidModule { .. }),
        ),
        case(
            "not_wasm",
            Source::Bytes(b"#!/bin/sh\nrm -rf /\n".to_vec()),
            Action::Load,
            kind!("InvalidModule", ErrorKind::InvalidModule { .. }),
        ),
        case(
            "truncated_module",
            Source::Bytes({
                let wasm = guest_bytes("echo");
                wasm[..wasm.len() / 2].to_vec()
            }),
            Action::Load,
            kind!("InvalidModule", ErrorKind::InvalidModule { .. }),
        ),
        case(
            "wat_text_instead_of_binary",
            Source::Bytes(br#"(module (memory (export "memory") 1))"#.to_vec()),
            Action::Load,
            kind!("InvalidModule", ErrorKind::InvalidModule { .. }),
        ),
        case(
            "invalid_function_body",
            Source::Bytes({
                // `(func (result i32))` with an empty body: fails validation.
                let mut wasm = b"\0asm\x01\0\0\0".to_vec();
                wasm.extend_from_slice(&[1, 5, 1, 0x60, 0, 1, 0x7f]); // type section
                wasm.extend_from_slice(&[3, 2, 1, 0]); // function section
                wasm.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]); // code section
                wasm
            }),
            Action::Load,
            kind!("InvalidModule", ErrorKind::InvalidModule { .. }),
        ),
        case(
            "module_over_size_limit",
            Source::Bytes({
                // Garbage after a wasm header: refused for its size before compiling,
                // or it would be an invalid module.
                let mut wasm = b"\0asm\x01\0\0\0".to_vec();
                wasm.resize(MAX_MODULE + 1, 0xff);
                wasm
            }),
            Action::Load,
            kind!(
                "Limit(ModuleSize)",
                ErrorKind::Limit(LimitKind::ModuleSize { size, limit: MAX_MODULE })
                    if *size == MAX_MODULE + 1
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------------
// The checker.

/// What a case ended with.
enum Outcome {
    /// The step failed with this error; for a call or a hook, the instance is kept to
    /// check it is poisoned, for a call with what the same call answered through
    /// `call_with`.
    Failed(
        Error,
        Option<(Instance<()>, Option<membrane_host::Result<usize>>)>,
    ),
    /// The step that should fail worked.
    Succeeded(String),
}

/// Runs a case's steps up to the one that must fail.
fn run(case: &Case, wasm: &[u8], setup: &Setup) -> Outcome {
    let module = match setup.engine.load(wasm) {
        Ok(module) => module,
        Err(e) => return Outcome::Failed(e, None),
    };
    if let Action::Load = case.action {
        return Outcome::Succeeded("load".into());
    }
    let pre = match module.prepare(&setup.host) {
        Ok(pre) => pre,
        Err(e) => return Outcome::Failed(e, None),
    };
    if let Action::Prepare = case.action {
        return Outcome::Succeeded("prepare".into());
    }
    let mut instance = match pre.instantiate(()) {
        Ok(instance) => instance,
        Err(e) => return Outcome::Failed(e, None),
    };
    let name = match case.action {
        Action::Call(name) => name,
        Action::Start | Action::Stop => {
            return match step(&mut instance, case.action) {
                Ok(()) => Outcome::Succeeded(format!("{:?}", case.action)),
                Err(e) => Outcome::Failed(e, Some((instance, None))),
            };
        }
        _ => return Outcome::Succeeded("instantiate".into()),
    };
    match instance.call_raw(name, b"hostile input") {
        Ok(out) => Outcome::Succeeded(format!("call_raw answered {out:?}")),
        Err(e) => {
            // The same call on a fresh instance, reading the output in place: the other
            // way the host reads an output envelope must fail the same way.
            let in_place = pre
                .instantiate(())
                .and_then(|mut fresh| fresh.call_with(name, b"hostile input", <[u8]>::len));
            Outcome::Failed(e, Some((instance, Some(in_place))))
        }
    }
}

/// The step of a case that runs guest code in an instance: a call or a hook.
fn step(instance: &mut Instance<()>, action: Action) -> membrane_host::Result<()> {
    match action {
        Action::Call(name) => instance.call_raw(name, b"again").map(drop),
        Action::Start => instance.start(),
        Action::Stop => instance.stop(),
        Action::Load | Action::Prepare | Action::Instantiate => Ok(()),
    }
}

/// Checks one case; returns what went wrong, if anything.
fn check(case: &Case) -> Result<(), String> {
    let wasm = match &case.source {
        Source::Wat(text) => wat::parse_str(text).map_err(|e| format!("bad test wat: {e}"))?,
        Source::Bytes(bytes) => bytes.clone(),
    };
    let setup = setup(case.profile);
    // A healthy instance of another module, alive while the case runs.
    let mut bystander = setup.healthy.instantiate(()).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| run(case, &wasm, setup)))
        .map_err(|_| "the host panicked".to_string())?;
    let elapsed = started.elapsed();
    if elapsed > CASE_TIME_BOUND {
        return Err(format!("took {elapsed:?}, more than {CASE_TIME_BOUND:?}"));
    }
    let (error, instance) = match outcome {
        Outcome::Failed(e, instance) => (e, instance),
        Outcome::Succeeded(what) => {
            return Err(format!("expected {}, but {what} worked", case.expect.label));
        }
    };
    let stage_ok = match (case.action, instance.is_some()) {
        (Action::Call(_) | Action::Start | Action::Stop, has) => has,
        (_, has) => !has,
    };
    if !stage_ok {
        return Err(format!(
            "failed at the wrong step with {error:?} (expected {})",
            case.expect.label
        ));
    }
    if !(case.expect.matches)(error.kind()) {
        return Err(format!("expected {}, got {error:?}", case.expect.label));
    }
    if let Some((mut instance, in_place)) = instance {
        match in_place {
            None => {}
            Some(Err(e)) if (case.expect.matches)(e.kind()) => {}
            Some(other) => {
                return Err(format!("call_with answered {other:?}, call_raw {error:?}"));
            }
        }
        if instance.is_poisoned() != case.poisons {
            return Err(format!(
                "the instance is {}poisoned after {error:?}",
                if case.poisons { "not " } else { "" }
            ));
        }
        let again = catch_unwind(AssertUnwindSafe(|| step(&mut instance, case.action)))
            .map_err(|_| "the host panicked on the second call".to_string())?;
        match again {
            Err(e) if case.poisons && matches!(e.kind(), ErrorKind::Poisoned { .. }) => {}
            // An intact instance runs the call again, and it fails the same way.
            Err(e) if !case.poisons && (case.expect.matches)(e.kind()) => {}
            other => return Err(format!("a second call answered {other:?}")),
        }
    }
    // The engine still serves other modules: the bystander and a fresh instance.
    let answer = bystander.call_raw("echo", b"still healthy");
    if answer.as_deref().ok() != Some(&b"still healthy"[..]) {
        return Err(format!("the bystander instance answered {answer:?}"));
    }
    let fresh = setup
        .healthy
        .call_fresh_raw((), "reverse", b"abc")
        .map_err(|e| format!("a fresh healthy instance failed: {e}"))?;
    if fresh != b"cba" {
        return Err(format!("a fresh healthy instance answered {fresh:?}"));
    }
    Ok(())
}

#[test]
fn every_hostile_case_fails_with_its_kind_and_the_host_survives() {
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = check(case) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn there_are_at_least_30_distinct_cases() {
    let cases = cases();
    let names: BTreeMap<&str, &str> = cases.iter().map(|c| (c.name, c.expect.label)).collect();
    assert_eq!(names.len(), cases.len(), "case names are not unique");
    assert!(cases.len() >= 30, "only {} cases", cases.len());
}

#[test]
fn docs_security_md_lists_every_case_with_its_kind() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md");
    let doc = std::fs::read_to_string(path).expect("docs/security.md");
    // Rows of the case table: | `name` | behaviour | step | `Kind` |
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Hostile-module cases"))
        .expect("a `## Hostile-module cases` section");
    let documented: Vec<(String, String, String)> = section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells.first()?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.last()?.strip_prefix('`')?.strip_suffix('`')?;
            let step = cells.get(cells.len().checked_sub(2)?)?;
            Some((name.to_string(), step.to_string(), kind.to_string()))
        })
        .collect();
    let tested: Vec<(String, String, String)> = cases()
        .iter()
        .map(|c| {
            let step = match c.action {
                Action::Load => "load",
                Action::Prepare => "prepare",
                Action::Instantiate => "instantiate",
                Action::Call(_) if c.poisons => "call",
                Action::Call(_) => "call (not poisoned)",
                Action::Start => "start hook",
                Action::Stop => "stop hook",
            };
            (
                c.name.to_string(),
                step.to_string(),
                c.expect.label.to_string(),
            )
        })
        .collect();
    assert_eq!(
        documented, tested,
        "the table in docs/security.md and the cases differ"
    );
}
