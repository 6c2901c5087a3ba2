//! Constants of the membrane ABI (normative text: `docs/abi.md`).

/// The ABI version this crate describes. A guest declares its version by exporting a
/// function named [`ABI_VERSION_EXPORT_PREFIX`] followed by the decimal version
/// (`__membrane_abi_v1`); the host reads that name when it loads the module, before
/// instantiating it, and refuses any version but its own.
pub const ABI_VERSION: u32 = 1;

/// Prefix of the export that declares a guest's ABI version.
pub const ABI_VERSION_EXPORT_PREFIX: &str = "__membrane_abi_v";

/// The export that declares this crate's ABI version: `() -> ()`, never called.
pub const ABI_VERSION_EXPORT: &str = "__membrane_abi_v1";

/// The guest's linear memory export.
pub const MEMORY_EXPORT: &str = "memory";

/// The guest's allocation entry: `(len: u32, reset: u32) -> u32`.
///
/// Returns a pointer to `len` writable bytes in guest memory, or 0 when it cannot
/// allocate. With `reset != 0`, which the host passes once per top-level call and only
/// when no call is running in the instance, it first resets the per-call arena,
/// reclaiming every envelope of the previous call.
pub const ALLOC_EXPORT: &str = "__membrane_alloc";

/// The optional lifecycle export `() -> u64` that starts an instance (`docs/abi.md`
/// §8): returns 0 on success, or the packed pointer/length ([`pack_ptr_len`]) of an
/// error envelope in guest memory. A membrane runtime runs it on every instance it
/// makes, before the instance serves a call; a host with a single instance calls it
/// through `Instance::start`. Like every `__` export it is never a callable guest
/// function.
pub const START_EXPORT: &str = "__membrane_start";

/// The optional lifecycle export `() -> u64` that stops an instance (`docs/abi.md` §8),
/// returning like [`START_EXPORT`]. A membrane runtime runs it on every started
/// instance it drops, unless a failure poisoned it.
pub const STOP_EXPORT: &str = "__membrane_stop";

/// Export names starting with this prefix are reserved for the ABI and are never
/// callable guest functions.
pub const RESERVED_EXPORT_PREFIX: &str = "__";

/// Import module of the ABI intrinsics the host always provides.
pub const INTRINSICS_MODULE: &str = "membrane";

/// Intrinsic `(state: u32, ptr: u32, len: u32) -> u32`: continues a CRC-32/ISO-HDLC
/// over guest memory `[ptr, ptr + len)` at native speed. `state` is a finished CRC
/// of the bytes before (0 for none), so `crc32(crc32(0, a), b) == crc32(0, a ++ b)`.
/// An out-of-bounds region traps the guest.
pub const CRC32_IMPORT: &str = "crc32";

/// Intrinsic `(ptr: u32, len: u32)`: hands the host the UTF-8 message of a guest panic
/// just before the guest traps. The host keeps at most [`MAX_PANIC_MESSAGE`] bytes.
pub const PANIC_IMPORT: &str = "panic";

/// Longest panic message the host keeps, in bytes.
pub const MAX_PANIC_MESSAGE: usize = 4096;

/// Import module of the host functions an application registers.
///
/// Each has the signature `(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64`:
/// the guest passes a request envelope `[ptr, ptr + len)` and a response buffer
/// `[resp_ptr, resp_ptr + resp_cap)` in its own memory (`resp_cap = 0`: none), and
/// receives the packed pointer/length of the response envelope. The host writes the
/// response into the buffer when it fits (no allocation call), else into memory it
/// obtains from [`ALLOC_EXPORT`]. The host reads the whole request before the function
/// runs and writes the response only after it returns, so the buffer may overlap the
/// request and may be reused by calls nested inside the function.
pub const HOST_MODULE: &str = "membrane_host";

/// Import module of the runtime's services to a guest (`docs/abi.md` §8): calls to
/// other modules and to host callables, the running call's context, and the list of
/// modules. Each import has the host-function signature of [`HOST_MODULE`]'s and the
/// same request/response protocol; a failure is an error envelope, never a trap.
pub const RUNTIME_MODULE: &str = "membrane_runtime";

/// `membrane_runtime.call`: calls a function of another module. Request payload: the
/// postcard encoding of `(module: &str, function: &str)` followed by the callee's
/// input payload; response payload: the callee's output payload.
pub const CALL_IMPORT: &str = "call";

/// `membrane_runtime.call_callable`: calls a host callable by id. Request payload: the
/// postcard encoding of the id (`u64`) followed by the input payload; response: the
/// callable's output payload.
pub const CALL_CALLABLE_IMPORT: &str = "call_callable";

/// `membrane_runtime.context`: the running call's context. Request payload: empty;
/// response: the postcard encoding of `(module: &str, caller: Option<&str>,
/// request_id: u64, depth: u32)`.
pub const CONTEXT_IMPORT: &str = "context";

/// `membrane_runtime.modules`: the modules of the runtime and their functions, when the
/// host allows it. Request payload: empty; response: the postcard encoding of
/// `Vec<(String, Vec<String>)>`, sorted by module name.
pub const MODULES_IMPORT: &str = "modules";

/// Import module of the standard host services (`docs/abi.md` §10): log, clocks,
/// randomness, effects, debug, key-value storage and the message bus. Each import has
/// the host-function signature of [`HOST_MODULE`]'s and the same request/response
/// protocol. A module may import a service only if its host granted it: a runtime
/// refuses to add a module that imports a service it was not granted, naming the
/// import and the grant.
pub const SERVICES_MODULE: &str = "membrane_services";

/// The imports of [`SERVICES_MODULE`], each with the name of the grant it needs
/// (`docs/abi.md` §10 gives every request and response).
pub const SERVICE_IMPORTS: [(&str, &str); 15] = [
    ("log", "log"),
    ("clock_wall", "clock"),
    ("clock_monotonic", "clock"),
    ("random", "random"),
    ("emit", "effects"),
    ("assert_failed", "debug"),
    ("breakpoint", "debug"),
    ("kv_get", "kv"),
    ("kv_put", "kv"),
    ("kv_delete", "kv"),
    ("kv_scan", "kv"),
    ("bus_send", "bus"),
    ("bus_broadcast", "bus"),
    ("bus_recv", "bus"),
    ("bus_pending", "bus"),
];

/// The export a module's message handler has (`docs/abi.md` §10): a guest function
/// (the signature of any export) whose input payload is the postcard encoding of
/// `(from: Option<&str>, channel: &str, payload: &[u8])` (`from`: `None` for the host).
/// A runtime delivers the module's queued messages to it
/// (`Runtime::run_until_idle`); nothing else may call it.
pub const MESSAGE_EXPORT: &str = "__membrane_message";

/// Packs an output envelope's location into the `u64` an export returns:
/// `ptr << 32 | len`.
#[inline]
pub const fn pack_ptr_len(ptr: u32, len: u32) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// Unpacks the `u64` an export returns into `(ptr, len)`.
#[inline]
pub const fn unpack_ptr_len(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_are_inverse_at_the_extremes() {
        for (p, l) in [
            (0, 0),
            (u32::MAX, 0),
            (0, u32::MAX),
            (u32::MAX, u32::MAX),
            (8, 12),
        ] {
            assert_eq!(unpack_ptr_len(pack_ptr_len(p, l)), (p, l));
        }
        assert_eq!(pack_ptr_len(1, 2), (1 << 32) | 2);
    }

    #[test]
    fn the_version_export_names_the_version() {
        let mut buf = [0u8; 32];
        let prefix = ABI_VERSION_EXPORT_PREFIX.as_bytes();
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()] = b'0' + ABI_VERSION as u8;
        assert_eq!(&buf[..prefix.len() + 1], ABI_VERSION_EXPORT.as_bytes());
    }
}
