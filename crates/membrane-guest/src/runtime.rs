//! The runtime's services to a guest (import module `membrane_runtime`, `docs/abi.md`
//! §8): calls to other modules and to host callables, the running call's context, and
//! the list of modules. Each is one host call with the protocol of host functions; a
//! failure is an [`Error`] with a code that tells its kind (`ErrorCode::UNKNOWN_MODULE`,
//! `CALLEE_TRAPPED`, `LIMIT_EXCEEDED`, `BUSY`, ... or the callee's own code when it
//! answered with an error).
//!
//! Off wasm32 (native unit tests of a module) every function returns an error with
//! code `NOT_FOUND`: there is no runtime.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::host::{call_host, call_host_prefixed};

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "membrane_runtime")]
    unsafe extern "C" {
        #[link_name = "call"]
        fn runtime_call(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
        #[link_name = "call_callable"]
        fn runtime_call_callable(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
        #[link_name = "context"]
        fn runtime_context(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
        #[link_name = "modules"]
        fn runtime_modules(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
    }

    // SAFETY (all four): the import reads the request envelope and writes the response
    // buffer that `call_host` / `call_host_prefixed` pass (live regions of guest memory
    // that no Rust reference points into during the call) and returns a packed response
    // location that they check before use.
    pub(super) fn call(p: u32, l: u32, rp: u32, rc: u32) -> u64 {
        // SAFETY: see above.
        unsafe { runtime_call(p, l, rp, rc) }
    }
    pub(super) fn call_callable(p: u32, l: u32, rp: u32, rc: u32) -> u64 {
        // SAFETY: see above.
        unsafe { runtime_call_callable(p, l, rp, rc) }
    }
    pub(super) fn context(p: u32, l: u32, rp: u32, rc: u32) -> u64 {
        // SAFETY: see above.
        unsafe { runtime_context(p, l, rp, rc) }
    }
    pub(super) fn modules(p: u32, l: u32, rp: u32, rc: u32) -> u64 {
        // SAFETY: see above.
        unsafe { runtime_modules(p, l, rp, rc) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imports {
    // Never called: off wasm32 the host-call functions answer `NOT_FOUND` first.
    pub(super) fn call(_: u32, _: u32, _: u32, _: u32) -> u64 {
        0
    }
    pub(super) use self::call as call_callable;
    pub(super) use self::call as context;
    pub(super) use self::call as modules;
}

/// Calls `function` of the module `module` in the same runtime with a serde value and
/// deserializes its output (postcard both ways).
///
/// The runtime runs the callee under its own limits, never past this call's deadline,
/// one level deeper in the call chain (at most `max_call_depth` deep). A failure of the
/// callee comes back as an `Err`, never as a trap of this module: the callee's own
/// error as it is, otherwise a code of the runtime's (`UNKNOWN_MODULE`,
/// `UNKNOWN_FUNCTION`, `CALLEE_TRAPPED`, `CALLEE_PANICKED`, `LIMIT_EXCEEDED`, `BUSY`,
/// `CALL_FAILED`, `NOT_IN_RUNTIME`).
///
/// ```
/// # fn f() -> Result<(), membrane_guest::Error> {
/// let total: u64 = membrane_guest::call("counter", "add", &(2u64, 3u64))?;
/// # Ok(()) }
/// # // Off wasm32 there is no runtime.
/// # assert_eq!(f().unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
/// ```
pub fn call<I, O>(module: &str, function: &str, input: &I) -> Result<O, Error>
where
    I: Serialize + ?Sized,
    O: DeserializeOwned,
{
    // The request's payload is `(module, function)` followed by the input's encoding:
    // postcard writes a tuple as its fields one after the other.
    call_host(
        "membrane_runtime.call",
        imports::call,
        &(module, function, input),
    )
}

/// Calls `function` of the module `module` with `input` as the payload and returns a
/// copy of the output payload (see [`call`]).
pub fn call_bytes(module: &str, function: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
    call_bytes_with(module, function, input, <[u8]>::to_vec)
}

/// Calls `function` of the module `module` with `input` as the payload and hands `read`
/// the output payload where it lies in this module's memory (see [`call`]).
pub fn call_bytes_with<R>(
    module: &str,
    function: &str,
    input: &[u8],
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    call_host_prefixed(
        "membrane_runtime.call",
        imports::call,
        &(module, function),
        input,
        read,
    )
}

/// Calls `function` of the module `module` with `input` as the payload and returns its
/// output as an [`Output`](crate::Output) for this module's bytes export to return as
/// its own: the callee's output is handed on where the host wrote it, with no copy in
/// this module (a relay, a proxy). See [`call`] for failures.
///
/// ```
/// use membrane_guest::{export, Error, Output};
///
/// /// Answers with whatever the module `store` answers.
/// #[export]
/// pub fn proxy(input: &[u8]) -> Result<Output, Error> {
///     membrane_guest::forward("store", "get", input)
/// }
/// # assert!(proxy(b"key").is_err()); // no runtime off wasm32
/// ```
pub fn forward(module: &str, function: &str, input: &[u8]) -> Result<crate::Output, Error> {
    crate::host::call_host_to_output(
        "membrane_runtime.call",
        imports::call,
        &(module, function),
        input,
    )
}

/// Calls the host callable `id` (an id the host registered and gave this module, as
/// data) with a serde value and deserializes its output. An id that is not registered
/// is an error with code `UNKNOWN_CALLABLE`; the callable's own error comes back as it
/// is.
pub fn call_callable<I, O>(id: u64, input: &I) -> Result<O, Error>
where
    I: Serialize + ?Sized,
    O: DeserializeOwned,
{
    call_host(
        "membrane_runtime.call_callable",
        imports::call_callable,
        &(id, input),
    )
}

/// Calls the host callable `id` with `input` as the payload and returns a copy of its
/// output payload (see [`call_callable`]).
pub fn call_callable_bytes(id: u64, input: &[u8]) -> Result<Vec<u8>, Error> {
    call_host_prefixed(
        "membrane_runtime.call_callable",
        imports::call_callable,
        &id,
        input,
        <[u8]>::to_vec,
    )
}

/// What the runtime says about the running call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct Context {
    /// This module's name in the runtime.
    pub module: String,
    /// The module that called, or `None` for a call from the host.
    pub caller: Option<String>,
    /// The request: unique per call from the host, the same along its whole chain of
    /// calls from module to module.
    pub request_id: u64,
    /// 1 in a call from the host, one more per call from module to module (and per
    /// call a host function nests in this instance).
    pub depth: u32,
}

/// The running call's [`Context`]. Outside a runtime (an instance a host made on its
/// own): an error with code `NOT_IN_RUNTIME`.
pub fn context() -> Result<Context, Error> {
    call_host("membrane_runtime.context", imports::context, &())
}

/// A module of the runtime, as [`modules`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct ModuleEntry {
    /// Its name.
    pub name: String,
    /// The functions it exports.
    pub functions: Vec<String>,
}

/// The runtime's modules and their functions, sorted by name, when the host allows it
/// (else an error with code `DENIED`).
pub fn modules() -> Result<Vec<ModuleEntry>, Error> {
    call_host("membrane_runtime.modules", imports::modules, &())
}
