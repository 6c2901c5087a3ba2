//! Host functions: typed closures the guest imports from `membrane_host`, and the ABI
//! intrinsics every module may import from `membrane`.

use std::sync::Arc;

use membrane_codec::{Codec, Crc32Fast, HEADER_LEN};
use membrane_types::{
    CRC32_IMPORT, ErrorCode, HOST_MODULE, INTRINSICS_MODULE, MAX_PANIC_MESSAGE, PANIC_IMPORT,
    pack_ptr_len,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::{AsContextMut, Caller, Linker, Memory};

use crate::call::call_nested;
use crate::store::{Handles, StoreData};
use crate::trap::{alloc_failed, classify};
use membrane_runtime::imports::{HostTable, Signature};
use membrane_runtime::memory::{guest_region, guest_region_mut};
use membrane_runtime::protocol::{self, read_to_vec};
use membrane_runtime::{AbiViolation, Error, ErrorKind, HostError, Result};

/// What a host function sees of the call it serves: the host state of the instance,
/// the function's name, and re-entrant calls back into the same instance.
pub struct HostContext<'a, 'c, T: 'static> {
    caller: &'a mut Caller<'c, StoreData<T>>,
    name: &'a str,
}

impl<'a, 'c, T: 'static> HostContext<'a, 'c, T> {
    /// The instance's host state.
    #[inline]
    pub fn state(&self) -> &T {
        &self.caller.data().state
    }

    /// The instance's host state, mutably.
    #[inline]
    pub fn state_mut(&mut self) -> &mut T {
        &mut self.caller.data_mut().state
    }

    /// The name under which this host function was called.
    #[inline]
    pub fn function(&self) -> &str {
        self.name
    }

    /// How many guest calls are running in this instance (1 in a host function called
    /// from a top-level call).
    #[inline]
    pub fn call_depth(&self) -> u32 {
        self.caller.data().depth
    }

    /// Calls the guest function `name` of the same instance (a re-entrant call) with raw
    /// payload bytes. Nested at most `membrane_runtime::Limits::max_call_depth` deep: a
    /// deeper call fails with `LimitKind::CallDepth`, which the host function may hand
    /// to the guest as an error envelope. Any other failure of the nested call that
    /// poisons the instance (a trap, a panic, an ABI violation, a memory limit) fails
    /// the whole outer call with that error, whatever the host function does next; a
    /// guest error does not.
    pub fn call_raw(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>> {
        let Some(handles) = self.caller.data().handles.clone() else {
            return Err(Error::host("instance is not initialised"));
        };
        call_nested(&mut *self.caller, &handles, name, input, read_to_vec)
    }

    /// Typed variant of [`HostContext::call_raw`] (postcard).
    pub fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        &mut self,
        name: &str,
        input: &I,
    ) -> Result<O> {
        let input = membrane_codec::to_payload(input).map_err(ErrorKind::Serialize)?;
        let out = self.call_raw(name, &input)?;
        membrane_codec::from_payload(&out).map_err(|e| ErrorKind::Deserialize(e).into())
    }
}

/// A host function after type erasure: request payload in, response payload out.
type ErasedFn<T> = dyn for<'a, 'c> Fn(&mut HostContext<'a, 'c, T>, &[u8]) -> std::result::Result<Vec<u8>, HostError>
    + Send
    + Sync;

/// A typed host function after type erasure: reads its request from guest memory and
/// writes its response there, returning the packed response location.
type TypedFn<T> = dyn Fn(&mut Caller<'_, StoreData<T>>, &str, u32, u32, ResponseBuffer) -> Result<u64>
    + Send
    + Sync;

/// Where the guest asked for a host function's response to go: `[ptr, ptr + cap)` of its
/// memory (`docs/abi.md` §4). A response that does not fit (or `cap == 0`: no buffer)
/// goes into memory obtained from the guest's allocation entry instead.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseBuffer {
    pub(crate) ptr: u32,
    pub(crate) cap: u32,
}

/// A bytes host function after type erasure: host state and the request payload,
/// borrowed where it lies in guest memory.
type BytesFn<T> = dyn Fn(&mut T, &[u8]) -> std::result::Result<Vec<u8>, HostError> + Send + Sync;

enum Registered<T: 'static> {
    /// Decodes its typed input from guest memory and encodes its output straight into it.
    Typed(Arc<TypedFn<T>>),
    /// Receives a copy of the request payload, returns the response payload.
    Raw(Arc<ErasedFn<T>>),
    /// Receives the request payload borrowed from guest memory, returns the response.
    Bytes(Arc<BytesFn<T>>),
}

impl<T: 'static> Clone for Registered<T> {
    fn clone(&self) -> Self {
        match self {
            Registered::Typed(f) => Registered::Typed(f.clone()),
            Registered::Raw(f) => Registered::Raw(f.clone()),
            Registered::Bytes(f) => Registered::Bytes(f.clone()),
        }
    }
}

/// The host functions offered to modules, by name (import module `membrane_host`).
///
/// `T` is the per-instance host state the functions can read and change through their
/// [`HostContext`].
///
/// ```
/// use membrane_runtime::HostError;
/// use membrane_wasmtime::HostFunctions;
///
/// let mut host = HostFunctions::<Vec<String>>::new();
/// host.register("add", |_ctx, (a, b): (u32, u32)| -> Result<u32, HostError> {
///     a.checked_add(b).ok_or_else(|| HostError::from("overflow"))
/// });
/// host.register("log", |ctx, line: String| -> Result<(), HostError> {
///     ctx.state_mut().push(line);
///     Ok(())
/// });
/// assert_eq!(host.names().count(), 2);
/// ```
pub struct HostFunctions<T: 'static> {
    table: HostTable<Registered<T>>,
}

impl<T: 'static> Default for HostFunctions<T> {
    fn default() -> Self {
        HostFunctions {
            table: HostTable::new(),
        }
    }
}

impl<T: 'static> Clone for HostFunctions<T> {
    fn clone(&self) -> Self {
        HostFunctions {
            table: self.table.clone(),
        }
    }
}

impl<T: Send + 'static> HostFunctions<T> {
    /// No host functions (the intrinsics are always there).
    pub fn new() -> HostFunctions<T> {
        HostFunctions::default()
    }

    /// Registers a typed host function under `name`, replacing any earlier one.
    ///
    /// The guest's request payload is deserialized (postcard) as `I`, the closure runs,
    /// and its `O` is serialized into the response envelope, or its [`HostError`] sent
    /// as an error envelope.
    pub fn register<I, O, F>(&mut self, name: &str, f: F) -> &mut Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: for<'a, 'c> Fn(&mut HostContext<'a, 'c, T>, I) -> std::result::Result<O, HostError>
            + Send
            + Sync
            + 'static,
    {
        let typed = move |caller: &mut Caller<'_, StoreData<T>>,
                          name: &str,
                          ptr: u32,
                          len: u32,
                          buf: ResponseBuffer|
              -> Result<u64> {
            let decoded = read_request(caller, ptr, len, buf, |_, payload| {
                membrane_codec::from_payload::<I>(payload).map_err(|e| {
                    HostError::new(
                        ErrorCode::INVALID_INPUT,
                        format!("request does not deserialize: {e}"),
                    )
                })
            })?;
            let result = decoded.and_then(|input| f(&mut HostContext { caller, name }, input));
            no_fault(caller)?;
            match result {
                Ok(output) => write_value(caller, &output, buf),
                Err(e) => write_error(caller, &e, buf),
            }
        };
        self.insert(name, Registered::Typed(Arc::new(typed)))
    }

    /// Registers a host function that works on raw payload bytes: the closure receives
    /// a copy of the request payload (exactly the bytes a guest passes to a bytes host
    /// function of `host_externs!`, or the postcard encoding of a typed one's input)
    /// and returns the response payload. It may call back into the instance through
    /// its [`HostContext`]; when it need not, [`HostFunctions::register_bytes`] saves
    /// the copy.
    pub fn register_raw<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: for<'a, 'c> Fn(
                &mut HostContext<'a, 'c, T>,
                &[u8],
            ) -> std::result::Result<Vec<u8>, HostError>
            + Send
            + Sync
            + 'static,
    {
        self.insert(name, Registered::Raw(Arc::new(f)))
    }

    /// Registers a host function on raw bytes that reads the request where it lies in
    /// guest memory: no copy of the request, no serialization, and the returned bytes
    /// are written once into the response envelope.
    ///
    /// The closure gets the instance's host state and the request payload (already
    /// verified; decompressed if the guest compressed it). While it borrows guest
    /// memory it cannot call back into the instance: use
    /// [`HostFunctions::register_raw`] for that.
    ///
    /// ```
    /// use membrane_runtime::HostError;
    /// use membrane_wasmtime::HostFunctions;
    ///
    /// let mut host = HostFunctions::<u64>::new();
    /// host.register_bytes("reverse", |seen: &mut u64, input: &[u8]| -> Result<Vec<u8>, HostError> {
    ///     *seen += input.len() as u64;
    ///     Ok(input.iter().rev().copied().collect())
    /// });
    /// ```
    pub fn register_bytes<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&mut T, &[u8]) -> std::result::Result<Vec<u8>, HostError> + Send + Sync + 'static,
    {
        self.insert(name, Registered::Bytes(Arc::new(f)))
    }

    fn insert(&mut self, name: &str, f: Registered<T>) -> &mut Self {
        self.table.insert(name, f);
        self
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.table.names()
    }

    /// Whether a function of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.table.contains(name)
    }

    /// Adds the intrinsics, the runtime's imports and these functions to a linker.
    pub(crate) fn link(&self, linker: &mut Linker<StoreData<T>>) -> Result<()> {
        let host = |e: wasmtime::Error| Error::host(format_args!("cannot link: {e:#}"));
        linker
            .func_wrap(INTRINSICS_MODULE, CRC32_IMPORT, intrinsic_crc32::<T>)
            .map_err(host)?;
        linker
            .func_wrap(INTRINSICS_MODULE, PANIC_IMPORT, intrinsic_panic::<T>)
            .map_err(host)?;
        crate::runtime_imports::link(linker)?;
        crate::runtime_imports::link_services(linker)?;
        for (name, f) in self.table.iter() {
            let f = f.clone();
            link_import(
                linker,
                HOST_MODULE,
                name,
                move |caller, name, ptr, len, buf| match &f {
                    Registered::Typed(f) => f(caller, name, ptr, len, buf),
                    Registered::Bytes(f) => call_bytes_host_fn(caller, &**f, ptr, len, buf),
                    Registered::Raw(f) => call_raw_host_fn(caller, name, &**f, ptr, len, buf),
                },
            )?;
        }
        Ok(())
    }
}

/// Links the import `module::name` with the host-function type (`docs/abi.md` §4): a
/// host function, a runtime import or a service. Each call is served by `serve` (with
/// the import's name, the request region and the response buffer) inside
/// [`serve_import`].
pub(crate) fn link_import<T: Send + 'static>(
    linker: &mut Linker<StoreData<T>>,
    module: &'static str,
    name: &str,
    serve: impl Fn(&mut Caller<'_, StoreData<T>>, &str, u32, u32, ResponseBuffer) -> Result<u64>
    + Send
    + Sync
    + 'static,
) -> Result<()> {
    let owned: Arc<str> = Arc::from(name);
    linker
        .func_wrap(
            module,
            name,
            move |mut caller: Caller<'_, StoreData<T>>,
                  ptr: u32,
                  len: u32,
                  resp_ptr: u32,
                  resp_cap: u32| {
                let buf = ResponseBuffer {
                    ptr: resp_ptr,
                    cap: resp_cap,
                };
                serve_import(&mut caller, module, &owned, |caller| {
                    serve(caller, &owned, ptr, len, buf)
                })
            },
        )
        .map_err(|e| Error::host(format_args!("cannot link: {e:#}")))?;
    Ok(())
}

/// Runs `serve` for a call of the import `module::name` with the host-function type
/// (a host function, a runtime service) and turns what it found wrong with the guest
/// into a trap: refused before the instance is set up (the module's start function),
/// and a panic in the host (a bug of the host application) stops the call (and poisons
/// the instance) instead of unwinding through wasm frames into the caller.
pub(crate) fn serve_import<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    module: &str,
    name: &str,
    serve: impl FnOnce(&mut Caller<'_, StoreData<T>>) -> Result<u64>,
) -> wasmtime::Result<u64> {
    let result = if caller.data().handles.is_none() {
        Err(import_during_start(module, name))
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(&mut *caller)))
            .unwrap_or_else(|panic| Err(host_fn_panicked(name, &*panic)))
    };
    trap_on_fault(caller, result)
}

/// The signature the linker gives this import, or `None` if it does not provide it.
#[inline]
pub(crate) fn provided<T: Send + 'static>(
    host: &HostFunctions<T>,
    module: &str,
    name: &str,
) -> Option<&'static Signature> {
    host.table.provided(module, name)
}

/// Reads a host function's request, the same way for every kind of host function
/// (`docs/abi.md` §4): checks the response buffer and the request region, charges the
/// fuel of the work ([`charge_fuel`]: the request's payload bytes, then the bytes
/// decompressed from it), verifies the envelope and decompresses its payload, and hands
/// `read` the host state and the payload, borrowed where it lies. A bad region or
/// envelope (a wrong checksum, a corrupt compressed block) is an ABI violation that
/// stops the guest; what `read` makes of the payload is the host function's business.
#[inline]
pub(crate) fn read_request<T: 'static, R>(
    caller: &mut Caller<'_, StoreData<T>>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
    read: impl FnOnce(&mut T, &[u8]) -> R,
) -> Result<R> {
    caller.data_mut().limits.forget_denials();
    let memory = memory(caller)?;
    {
        let data = memory.data(&*caller);
        check_response_buffer(data, buf)?;
        guest_region(data, ptr, len, "host function request")?;
    }
    // The payload's bytes: the header's fixed work is part of the call's, like the
    // import call itself (and charging it would cost a fuel update per small request).
    charge_fuel(caller, len.saturating_sub(HEADER_LEN as u32))?;
    let (value, decompressed) = {
        let (data, store) = memory.data_and_store_mut(&mut *caller);
        let codec = Codec::new(store.codec);
        // Checked above; guest memory never shrinks.
        let request = guest_region(data, ptr, len, "host function request")?;
        protocol::read_request(&codec, request, |payload| read(&mut store.state, payload))?
    };
    if decompressed != 0 {
        charge_fuel(caller, decompressed)?;
    }
    Ok(value)
}

fn call_raw_host_fn<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    name: &str,
    f: &ErasedFn<T>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    let request = read_request(caller, ptr, len, buf, |_, payload| payload.to_vec())?;
    let result = f(&mut HostContext { caller, name }, &request);
    respond_bytes(caller, buf, result)
}

/// Writes the response of a host function that answered with bytes or an error: the
/// payload, or the error envelope. A fault recorded while the function ran (a nested
/// call that trapped) fails the call instead: no more of the guest's code may run.
pub(crate) fn respond_bytes<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    buf: ResponseBuffer,
    result: std::result::Result<Vec<u8>, HostError>,
) -> Result<u64> {
    no_fault(caller)?;
    match result {
        Ok(output) => write_bytes(caller, buf, &output),
        Err(e) => write_error(caller, &e, buf),
    }
}

/// Serves a bytes host function ([`HostFunctions::register_bytes`]): the request
/// payload is handed to `f` where it lies in guest memory, beside the host state.
fn call_bytes_host_fn<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    f: &BytesFn<T>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    match read_request(caller, ptr, len, buf, f)? {
        Ok(output) => write_bytes(caller, buf, &output),
        Err(e) => write_error(caller, &e, buf),
    }
}

/// Writes a response envelope carrying `bytes`: copied and checksummed in one pass.
fn write_bytes<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    buf: ResponseBuffer,
    bytes: &[u8],
) -> Result<u64> {
    let total = protocol::response_len(bytes.len())?;
    let (ptr, region) = response_region(caller, buf, total)?;
    protocol::write_bytes_response(region, bytes)?;
    Ok(pack_ptr_len(ptr, total))
}

/// The error for a host function that panicked.
#[cold]
pub(crate) fn host_fn_panicked(name: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>");
    Error::host(format_args!("host function `{name}` panicked: {message}"))
}

/// The error for an import called by the module's start function: the instance does
/// not exist yet, so there is no memory or allocation entry to serve the call with.
#[cold]
fn import_during_start(module: &str, name: &str) -> Error {
    Error::abi(AbiViolation::ImportDuringStart {
        import: format!("{module}::{name}"),
    })
}

/// Fails with the fault a nested call recorded while the host function ran (it trapped,
/// and the host function went on): no more of the guest's code may run, not even its
/// allocation entry for the response.
#[inline]
fn no_fault<T: 'static>(caller: &mut Caller<'_, StoreData<T>>) -> Result<()> {
    match caller.data_mut().fault.take() {
        None => Ok(()),
        Some(fault) => Err(fault),
    }
}

/// Turns a host-detected guest fault into a trap, recording the real error.
fn trap_on_fault<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    result: Result<u64>,
) -> wasmtime::Result<u64> {
    result.map_err(|e| {
        caller.data_mut().set_fault(e);
        wasmtime::Error::msg("membrane: the host stopped the guest (see the recorded fault)")
    })
}

/// The guest's allocation entry, `(len, reset) -> ptr` (`reset`: 1 for a top-level call).
type AllocFunc = wasmtime::TypedFunc<(u32, u32), u32>;

/// The instance's memory and allocation entry.
fn handles<T: 'static>(caller: &mut Caller<'_, StoreData<T>>) -> Result<Arc<Handles>> {
    match &caller.data().handles {
        Some(h) => Ok(h.clone()),
        None => Err(not_initialised()),
    }
}

/// The instance's memory (a copy of the handle: no reference count to touch).
#[inline]
fn memory<T: 'static>(caller: &Caller<'_, StoreData<T>>) -> Result<Memory> {
    match &caller.data().handles {
        Some(h) => Ok(h.memory),
        None => Err(not_initialised()),
    }
}

#[cold]
fn not_initialised() -> Error {
    Error::host("host function called before the instance finished instantiating")
}

/// Refuses a response buffer that is not inside guest memory `data`, before the host
/// function runs (checked with the request, on the same view of memory). Memory never
/// shrinks, so the buffer stays valid for the whole call.
#[inline]
fn check_response_buffer(data: &[u8], buf: ResponseBuffer) -> Result<()> {
    if buf.cap == 0 {
        return Ok(());
    }
    guest_region(data, buf.ptr, buf.cap, "host function response buffer").map(drop)
}

/// Where a response envelope of `total` bytes goes: the guest's response buffer when it
/// fits, else memory from the guest's allocation entry.
#[inline]
fn response_ptr<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    buf: ResponseBuffer,
    total: u32,
) -> Result<u32> {
    if total <= buf.cap {
        Ok(buf.ptr)
    } else {
        let handles = handles(caller)?;
        alloc_in_guest(caller, &handles.alloc, total)
    }
}

/// The `total` bytes of guest memory a response envelope goes into (see
/// [`response_ptr`]), with their address.
fn response_region<'c, T: 'static>(
    caller: &'c mut Caller<'_, StoreData<T>>,
    buf: ResponseBuffer,
    total: u32,
) -> Result<(u32, &'c mut [u8])> {
    let ptr = response_ptr(caller, buf, total)?;
    let memory = memory(caller)?;
    let region = guest_region_mut(
        memory.data_mut(caller),
        ptr,
        total,
        "host function response",
    )?;
    Ok((ptr, region))
}

/// Serializes `value` straight into a response envelope in guest memory: into the
/// guest's response buffer in one pass when it fits, else sized first and written into
/// memory from the allocation entry.
pub(crate) fn write_value<T: 'static, O: Serialize + ?Sized>(
    caller: &mut Caller<'_, StoreData<T>>,
    value: &O,
    buf: ResponseBuffer,
) -> Result<u64> {
    if buf.cap as usize > HEADER_LEN {
        let memory = memory(caller)?;
        let region = guest_region_mut(
            memory.data_mut(&mut *caller),
            buf.ptr,
            buf.cap,
            "host function response buffer",
        )?;
        match protocol::write_value_response(region, value) {
            Ok(Some(total)) => return Ok(pack_ptr_len(buf.ptr, total)),
            // Too large for the buffer: sized and allocated below.
            Ok(None) => {}
            Err(e) => return write_error(caller, &e, buf),
        }
    }
    let size = match protocol::value_payload_len(value) {
        Ok(size) => size,
        Err(e) => return write_error(caller, &e, buf),
    };
    let total = protocol::response_len(size)?;
    let (ptr, region) = response_region(caller, buf, total)?;
    protocol::write_value_into(region, value)?;
    Ok(pack_ptr_len(ptr, total))
}

pub(crate) fn write_error<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    e: &HostError,
    buf: ResponseBuffer,
) -> Result<u64> {
    let total = protocol::error_response_len(e)?;
    let (ptr, region) = response_region(caller, buf, total)?;
    protocol::write_error_response(region, e)?;
    Ok(pack_ptr_len(ptr, total))
}

/// Calls the guest's allocation entry for a nested allocation (never resets the arena).
fn alloc_in_guest<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    alloc: &AllocFunc,
    len: u32,
) -> Result<u32> {
    match alloc.call(&mut *caller, (len, 0)) {
        Ok(0) => Err(alloc_failed(caller.data(), len)),
        Ok(ptr) => Ok(ptr),
        Err(e) => Err(classify(caller.as_context_mut().data_mut(), e)),
    }
}

/// Bytes of guest memory the host may process for one unit of fuel, in intrinsics and
/// in host-function requests (`docs/security.md`): about the time the guest's own code
/// spends on one instruction.
pub(crate) const BYTES_PER_FUEL: u64 = 16;

/// Bytes the `crc32` intrinsic checksums between two checks of the deadline and the
/// cancel flag (about 0.1 ms of work).
const CRC32_CHUNK: usize = 1 << 20;

/// Charges the fuel of host work over `len` bytes of guest input ([`BYTES_PER_FUEL`]);
/// fails with `OutOfFuel` (leaving none) when the call has not that much left.
#[inline]
pub(crate) fn charge_fuel<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    len: u32,
) -> Result<()> {
    let cost = u64::from(len) / BYTES_PER_FUEL;
    if cost == 0 || caller.data().fuel_limit.is_none() {
        return Ok(());
    }
    charge_fuel_slow(caller, cost)
}

#[inline(never)]
fn charge_fuel_slow<T: 'static>(caller: &mut Caller<'_, StoreData<T>>, cost: u64) -> Result<()> {
    let fuel = caller
        .get_fuel()
        .map_err(|e| Error::host(format_args!("cannot read fuel: {e:#}")))?;
    let left = fuel.checked_sub(cost);
    caller
        .set_fuel(left.unwrap_or(0))
        .map_err(|e| Error::host(format_args!("cannot set fuel: {e:#}")))?;
    match left {
        Some(_) => Ok(()),
        None => Err(ErrorKind::Trap(membrane_runtime::TrapKind::OutOfFuel).into()),
    }
}

/// `membrane.crc32(state, ptr, len) -> crc`: native-speed CRC-32 over guest memory,
/// charged [`BYTES_PER_FUEL`] and stopped by the deadline or a cancel between chunks.
fn intrinsic_crc32<T: 'static>(
    mut caller: Caller<'_, StoreData<T>>,
    state: u32,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<u32> {
    let result = crc32_of_guest_region(&mut caller, state, ptr, len);
    result.map_err(|e| {
        caller.data_mut().set_fault(e);
        wasmtime::Error::msg("membrane: the host stopped the guest (see the recorded fault)")
    })
}

fn crc32_of_guest_region<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    mut state: u32,
    ptr: u32,
    len: u32,
) -> Result<u32> {
    use membrane_codec::Checksum;
    let data = caller.data_mut();
    data.limits.forget_denials();
    data.crc32_calls += 1;
    let Some(memory) = caller.data().handles.as_ref().map(|h| h.memory) else {
        return Err(import_during_start(INTRINSICS_MODULE, CRC32_IMPORT));
    };
    // Checked whole before any work or charge.
    guest_region(memory.data(&*caller), ptr, len, "crc32 region")?;
    charge_fuel(caller, len)?;
    let (mut at, end) = (ptr as usize, ptr as usize + len as usize);
    while at < end {
        let next = end.min(at + CRC32_CHUNK);
        state = Crc32Fast.update(state, &memory.data(&*caller)[at..next]);
        at = next;
        if at < end && caller.data_mut().timer.expired() {
            let kind = caller.data_mut().timer.fired.take();
            return Err(
                ErrorKind::Trap(kind.unwrap_or(membrane_runtime::TrapKind::Timeout)).into(),
            );
        }
    }
    Ok(state)
}

/// `membrane.panic(ptr, len)`: keeps the guest's panic message for the trap that follows.
fn intrinsic_panic<T: 'static>(mut caller: Caller<'_, StoreData<T>>, ptr: u32, len: u32) {
    let message = match &caller.data().handles {
        Some(h) => {
            let memory = h.memory;
            match guest_region(
                memory.data(&caller),
                ptr,
                len.min(MAX_PANIC_MESSAGE as u32),
                "panic message",
            ) {
                Ok(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Err(e) => format!("<unreadable panic message: {e}>"),
            }
        }
        None => "<panic during instantiation>".to_string(),
    };
    caller.data_mut().panic = Some(message);
}
