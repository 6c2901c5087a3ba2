//! Instances and calls: the one place where envelopes cross into and out of a guest.

use membrane_codec::Codec;
use membrane_runtime::memory::{guest_region, guest_region_mut};
use membrane_runtime::protocol::{self, read_in_place, read_to_vec};
use membrane_types::{ALLOC_EXPORT, MEMORY_EXPORT, unpack_ptr_len};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use wasmtime::{AsContextMut, Linker, Store, StoreContextMut, TypedFunc, UpdateDeadline};

use crate::host_fn::{HostFunctions, provided};
use crate::module::{Module, describe};
use crate::store::{CancelHandle, Handles, Limits, StoreData, Timer};
use membrane_runtime::{AbiViolation, Error, ErrorKind, LimitKind, Result, TrapKind};

/// A module linked with its host functions, ready to make instances quickly (wasmtime's
/// `InstancePre`: imports are resolved and type-checked once). `Send + Sync` when `T` is
/// `Send`; cheap to clone.
pub struct InstancePre<T: 'static> {
    module: Module,
    pre: wasmtime::InstancePre<StoreData<T>>,
}

impl<T: 'static> Clone for InstancePre<T> {
    fn clone(&self) -> Self {
        InstancePre {
            module: self.module.clone(),
            pre: self.pre.clone(),
        }
    }
}

impl<T: Send + 'static> InstancePre<T> {
    pub(crate) fn new(module: Module, host: &HostFunctions<T>) -> Result<InstancePre<T>> {
        let mut missing = Vec::new();
        let mut wrong_type = None;
        for import in module.wasmtime().imports() {
            let name = format!("{}::{}", import.module(), import.name());
            match provided(host, import.module(), import.name()) {
                None => missing.push(name),
                Some(provided) if !provided.fits(&import.ty()) => {
                    wrong_type.get_or_insert(AbiViolation::WrongImportType {
                        import: name,
                        expected: provided.text,
                        found: describe(&import.ty()),
                    });
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return Err(ErrorKind::MissingImports { imports: missing }.into());
        }
        if let Some(violation) = wrong_type {
            return Err(Error::abi(violation));
        }
        let mut linker = Linker::new(module.engine().wasmtime());
        host.link(&mut linker)?;
        let pre = linker.instantiate_pre(module.wasmtime()).map_err(|e| {
            Error::abi(AbiViolation::WrongExportType {
                name: "<imports>".into(),
                expected: "imports with the types the host provides",
                found: format!("{e:#}"),
            })
        })?;
        Ok(InstancePre { module, pre })
    }

    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// A new instance with its own memory and host state `state`. The module's start
    /// function, if any, runs under the call limits (fuel, timeout, memory); to be able
    /// to cancel it from another thread, use [`InstancePre::instantiate_with_cancel`].
    pub fn instantiate(&self, state: T) -> Result<Instance<T>> {
        self.instantiate_inner(state, Arc::new(AtomicBool::new(false)))
            .map_err(|(e, _)| e)
    }

    /// [`InstancePre::instantiate`] with a cancel handle made beforehand
    /// ([`CancelHandle::new`]): cancelling it stops the start function (the
    /// instantiation fails with `TrapKind::Cancelled`), and once the instance exists,
    /// its calls, as the handle [`Instance::cancel_handle`] returns.
    pub fn instantiate_with_cancel(&self, state: T, cancel: &CancelHandle) -> Result<Instance<T>> {
        if !wasmtime::Engine::same(&cancel.engine, self.module.engine().wasmtime()) {
            return Err(ErrorKind::Config {
                reason: "the cancel handle was made for another engine".into(),
            }
            .into());
        }
        self.instantiate_inner(state, cancel.flag.clone())
            .map_err(|(e, _)| e)
    }

    /// Makes an instance with `state`, watching `cancel`; on failure, hands the state
    /// back with the error.
    fn instantiate_inner(
        &self,
        state: T,
        cancel: Arc<AtomicBool>,
    ) -> std::result::Result<Instance<T>, (Error, T)> {
        let engine = self.module.engine();
        let config = engine.config();
        if let Err(e) = crate::native_stack::check(config.max_wasm_stack) {
            return Err((e, state));
        }
        let timeout_ticks = match config.timeout {
            Some(t) => u64::try_from(t.as_nanos().div_ceil(config.epoch_tick.as_nanos()))
                .unwrap_or(u64::MAX),
            None => u64::MAX,
        };
        let limits = Limits {
            max_memory: config.max_memory,
            max_table_elements: config.max_table_elements,
            memory_denied: false,
            table_denied: false,
        };
        let mut data = StoreData::new(
            state,
            limits,
            Timer::new(engine.clock().cloned(), timeout_ticks, cancel),
            config.max_call_depth,
            config.codec,
        );
        data.fuel_limit = config.metering_limit;
        let mut store = Store::new(engine.wasmtime(), data);
        store.limiter(|data| &mut data.limits);
        store.epoch_deadline_callback(|mut ctx| {
            Ok(if ctx.data_mut().timer.expired() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        if let Err(e) = begin_top_level_call(&mut store) {
            return Err((e, store.into_data().state));
        }
        let instance = match self.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => {
                let e = classify(store.data_mut(), e);
                return Err((e, store.into_data().state));
            }
        };
        match self.handles(&mut store, instance) {
            Ok(handles) => Ok(Instance {
                store,
                handles,
                poisoned: None,
            }),
            Err(e) => Err((e, store.into_data().state)),
        }
    }

    /// Resolves the exports a call needs and records them in the store.
    fn handles(
        &self,
        store: &mut Store<StoreData<T>>,
        instance: wasmtime::Instance,
    ) -> Result<Arc<Handles>> {
        let memory = instance
            .get_memory(&mut *store, MEMORY_EXPORT)
            .ok_or_else(|| {
                Error::abi(AbiViolation::MissingExport {
                    name: MEMORY_EXPORT.into(),
                })
            })?;
        let alloc = instance
            .get_typed_func::<(u32, u32), u32>(&mut *store, ALLOC_EXPORT)
            .map_err(|e| {
                Error::abi(AbiViolation::WrongExportType {
                    name: ALLOC_EXPORT.into(),
                    expected: "(func (param i32 i32) (result i32))",
                    found: format!("{e:#}"),
                })
            })?;
        let functions = (0..self.module.inner().functions.len())
            .map(|_| OnceLock::new())
            .collect();
        let handles = Arc::new(Handles {
            instance,
            memory,
            alloc,
            functions,
            module: self.module.clone(),
        });
        store.data_mut().handles = Some(handles.clone());
        Ok(handles)
    }

    /// Calls `name` in a fresh instance made for this call only, then drops it: no
    /// state survives between calls, and a failing call cannot affect the next.
    pub fn call_fresh_raw(&self, state: T, name: &str, input: &[u8]) -> Result<Vec<u8>> {
        self.instantiate(state)?.call_raw(name, input)
    }

    /// Typed variant of [`InstancePre::call_fresh_raw`] (postcard).
    pub fn call_fresh<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        state: T,
        name: &str,
        input: &I,
    ) -> Result<O> {
        self.instantiate(state)?.call(name, input)
    }
}

/// An instance of a module: its own linear memory, globals and host state `T`, kept
/// across calls. Not `Sync`: one call at a time (use one instance per thread, or a
/// fresh instance per call).
///
/// After a call that traps, panics, breaks the ABI or hits a limit, the instance is
/// *poisoned*: every later call fails with [`ErrorKind::Poisoned`] until
/// [`Instance::reset`] replaces it with a fresh one. A guest error (an error envelope)
/// does not poison.
pub struct Instance<T: 'static> {
    store: Store<StoreData<T>>,
    handles: Arc<Handles>,
    poisoned: Option<String>,
}

impl<T: Send + 'static> Instance<T> {
    /// Calls the guest function `name` with raw payload bytes and returns a copy of the
    /// output payload.
    pub fn call_raw(&mut self, name: &str, input: &[u8]) -> Result<Vec<u8>> {
        self.call_envelope(name, input, read_to_vec)
    }

    /// Calls the guest function `name` and hands `read` the output payload where it lies
    /// in guest memory (no copy; decompressed first if the guest compressed it).
    pub fn call_with<R>(
        &mut self,
        name: &str,
        input: &[u8],
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.call_envelope(name, input, |codec, bytes| {
            read_in_place(codec, bytes, read)
        })
    }

    /// A top-level call; `read` decodes the output envelope where it lies in guest memory.
    fn call_envelope<R>(
        &mut self,
        name: &str,
        input: &[u8],
        read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
    ) -> Result<R> {
        if let Some(reason) = &self.poisoned {
            return Err(ErrorKind::Poisoned {
                reason: reason.clone(),
            }
            .into());
        }
        crate::native_stack::check(self.handles.module.engine().config().max_wasm_stack)?;
        begin_top_level_call(&mut self.store)?;
        let result = call_top_level(&mut self.store, &self.handles, name, input, read);
        if let Err(e) = &result
            && e.poisons()
        {
            self.poisoned = Some(e.to_string());
        }
        result
    }

    /// Calls the guest function `name` with a serde value and deserializes its output
    /// (postcard both ways).
    pub fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        &mut self,
        name: &str,
        input: &I,
    ) -> Result<O> {
        let input = membrane_codec::to_payload(input).map_err(ErrorKind::Serialize)?;
        self.call_with(name, &input, |out| membrane_codec::from_payload::<O>(out))?
            .map_err(|e| ErrorKind::Deserialize(e).into())
    }

    /// The instance's host state.
    pub fn state(&self) -> &T {
        &self.store.data().state
    }

    /// The instance's host state, mutably.
    pub fn state_mut(&mut self) -> &mut T {
        &mut self.store.data_mut().state
    }

    /// A handle that cancels this instance's running call from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            flag: self.store.data().timer.cancel.clone(),
            engine: self.store.engine().clone(),
        }
    }

    /// Whether an earlier failure poisoned the instance.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Current size of the guest's linear memory in bytes.
    pub fn memory_size(&self) -> usize {
        self.handles.memory.data_size(&self.store)
    }

    /// Fuel the guest has left in the current (or last) call, if metering is on.
    pub fn fuel_remaining(&self) -> Option<u64> {
        self.store.get_fuel().ok()
    }

    /// How many times the guest called the `membrane.crc32` intrinsic since the
    /// instance was made (a diagnostic: a `membrane-guest` module calls it to checksum
    /// the envelopes of 64 bytes or more that it writes, never for one the host wrote).
    pub fn crc32_calls(&self) -> u64 {
        self.store.data().crc32_calls
    }

    /// The module this is an instance of.
    pub fn module(&self) -> &Module {
        &self.handles.module
    }

    /// Replaces this instance with a fresh instance of `pre`, keeping the host state
    /// (guest state is lost) and the cancel handle: a [`CancelHandle`] taken before the
    /// reset cancels the new instance's calls. Clears poisoning.
    ///
    /// The old instance is dropped only once the new one exists: if instantiation fails
    /// (its start function traps, or the pooling allocator has no free slot), the
    /// instance, its host state and its poisoning stay as they were. On a full pool,
    /// drop the instance and instantiate anew instead.
    pub fn reset(&mut self, pre: &InstancePre<T>) -> Result<()>
    where
        T: Default,
    {
        let state = std::mem::take(&mut self.store.data_mut().state);
        let cancel = self.store.data().timer.cancel.clone();
        match pre.instantiate_inner(state, cancel) {
            Ok(fresh) => {
                *self = fresh;
                Ok(())
            }
            Err((e, state)) => {
                self.store.data_mut().state = state;
                Err(e)
            }
        }
    }

    /// Consumes the instance, returning its host state.
    pub fn into_state(self) -> T {
        self.store.into_data().state
    }
}

/// Arms fuel and the timer for a top-level call (or an instantiation).
#[inline(always)]
fn begin_top_level_call<T: 'static>(store: &mut Store<StoreData<T>>) -> Result<()> {
    let data = store.data_mut();
    data.begin_call();
    if let Some(limit) = data.fuel_limit {
        store
            .set_fuel(limit)
            .map_err(|e| Error::host(format_args!("cannot set fuel: {e:#}")))?;
    }
    store.set_epoch_deadline(1);
    Ok(())
}

/// A top-level call of a guest function: [`call_in`] when no call runs in the store.
///
/// The instance is borrowed mutably for the whole of a top-level call, so none can run
/// in its store already: the call is at depth 0, within any depth limit
/// (`max_call_depth` is at least 1), and has no outer call to record a fault for.
#[inline(always)]
fn call_top_level<T: 'static, R>(
    store: &mut Store<StoreData<T>>,
    handles: &Handles,
    name: &str,
    input: &[u8],
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let mut store = store.as_context_mut();
    let func = function(&mut store, handles, name)?;
    store.data_mut().depth = 1;
    let result = call_func(&mut store, handles, func, input, true, read);
    store.data_mut().depth = 0;
    result
}

/// One call of a guest function, top-level or nested: input envelope in, output out.
///
/// A nested call (made by a host function) that fails with an error that poisons
/// records a copy of it as the store's fault: the host function may swallow the error,
/// but no more of the instance's code runs (a further nested call is refused with the
/// same error, and the guest is stopped as soon as the host function returns) and the
/// outer call fails with it. The depth
/// limit is the exception (`docs/abi.md` §6): it refuses the nested call before any
/// guest code runs, so the instance is intact and the host function may hand the
/// refusal to the guest as an error envelope.
pub(crate) fn call_in<T: 'static, R>(
    mut store: impl AsContextMut<Data = StoreData<T>>,
    handles: &Handles,
    name: &str,
    input: &[u8],
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let mut store = store.as_context_mut();
    let nested = store.data().depth > 0;
    let result = call_at_depth(&mut store, handles, name, input, read);
    if nested
        && let Err(e) = &result
        && e.poisons()
        && !matches!(e.kind(), ErrorKind::Limit(LimitKind::CallDepth { .. }))
    {
        store.data_mut().set_fault(e.copy_of_fault());
    }
    result
}

fn call_at_depth<T: 'static, R>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &Handles,
    name: &str,
    input: &[u8],
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let data = store.data_mut();
    if let Some(fault) = &data.fault {
        // An earlier nested call of the same outer call trapped: no more guest code runs.
        return Err(fault.copy_of_fault());
    }
    if data.depth >= data.max_depth {
        return Err(ErrorKind::Limit(LimitKind::CallDepth {
            limit: data.max_depth,
        })
        .into());
    }
    let func = function(store, handles, name)?;
    let data = store.data_mut();
    let top_level = data.depth == 0;
    data.depth += 1;
    let result = call_func(store, handles, func, input, top_level, read);
    store.data_mut().depth -= 1;
    result
}

fn call_func<T: 'static, R>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &Handles,
    func: &TypedFunc<(u32, u32), u64>,
    input: &[u8],
    top_level: bool,
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let (memory, alloc) = (handles.memory, &handles.alloc);
    let codec = Codec::new(store.data().codec);
    let len = protocol::input_envelope_len(input.len())?;
    let ptr = match alloc.call(&mut *store, (len, top_level as u32)) {
        Ok(0) => return Err(alloc_failed(store.data(), len)),
        Ok(ptr) => ptr,
        Err(e) => return Err(classify(store.data_mut(), e)),
    };
    let region = guest_region_mut(
        memory.data_mut(&mut *store),
        ptr,
        len,
        "input envelope from the allocation entry",
    )?;
    let written = protocol::write_input(&codec, region, input)?;
    let packed = func
        .call(&mut *store, (ptr, written))
        .map_err(|e| classify(store.data_mut(), e))?;
    if let Some(fault) = store.data_mut().fault.take() {
        // A nested call trapped, and the host function that saw it let the guest go on.
        return Err(fault);
    }
    let (out_ptr, out_len) = unpack_ptr_len(packed);
    let bytes = guest_region(memory.data(&*store), out_ptr, out_len, "output envelope")?;
    read(&codec, bytes)
}

/// The typed guest function `name`, resolved once per instance.
#[inline(always)]
fn function<'h, T: 'static>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &'h Handles,
    name: &str,
) -> Result<&'h TypedFunc<(u32, u32), u64>> {
    if let Some(index) = handles.module.function_index(name)
        && let Some(func) = handles.functions[index].get()
    {
        return Ok(func);
    }
    resolve_function(store, handles, name)
}

/// [`function`] on first use of `name` (or for a name that is not callable).
#[cold]
#[inline(never)]
fn resolve_function<'h, T: 'static>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &'h Handles,
    name: &str,
) -> Result<&'h TypedFunc<(u32, u32), u64>> {
    let Some(index) = handles.module.function_index(name) else {
        return Err(ErrorKind::UnknownFunction {
            name: name.to_string(),
        }
        .into());
    };
    let slot = &handles.functions[index];
    if let Some(func) = slot.get() {
        return Ok(func);
    }
    let export = &handles.module.inner().functions[index];
    if let Err(found) = &export.signature {
        return Err(Error::abi(AbiViolation::WrongExportType {
            name: name.to_string(),
            expected: crate::module::FUNCTION_SIGNATURE,
            found: found.clone(),
        }));
    }
    let func = handles
        .instance
        .get_module_export(&mut *store, &export.export)
        .and_then(wasmtime::Extern::into_func)
        .ok_or_else(|| Error::host(format_args!("export `{name}` vanished from its instance")))?
        .typed::<(u32, u32), u64>(&*store)
        .map_err(|e| Error::host(format_args!("export `{name}`: {e:#}")))?;
    Ok(slot.get_or_init(|| func))
}

/// The error for an allocation entry that returned 0.
#[cold]
pub(crate) fn alloc_failed<T>(data: &StoreData<T>, len: u32) -> Error {
    if data.limits.memory_denied {
        ErrorKind::Limit(LimitKind::Memory {
            limit: data.limits.max_memory,
        })
        .into()
    } else {
        Error::abi(AbiViolation::AllocFailed { len })
    }
}

/// Turns the error of a wasm call into a membrane error, using what the store saw.
#[cold]
pub(crate) fn classify<T>(data: &mut StoreData<T>, e: wasmtime::Error) -> Error {
    if let Some(fault) = data.fault.take() {
        return fault;
    }
    if let Some(kind) = data.timer.fired.take() {
        return ErrorKind::Trap(kind).into();
    }
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    let kind = match trap {
        Some(wasmtime::Trap::OutOfFuel) => Some(TrapKind::OutOfFuel),
        Some(wasmtime::Trap::StackOverflow) => Some(TrapKind::StackOverflow),
        Some(wasmtime::Trap::Interrupt) => Some(TrapKind::Timeout),
        _ => None,
    };
    if let Some(kind) = kind {
        return ErrorKind::Trap(kind).into();
    }
    // A refused `memory.grow` or `table.grow` returns -1 to the guest, which may handle
    // it and go on: the limit ended the call only if the guest then aborted the way a
    // Rust guest does when an allocation fails (`unreachable`, or a panic with Rust's
    // allocation-failure message). Any other ending is reported as what it is.
    let aborted = matches!(trap, Some(wasmtime::Trap::UnreachableCodeReached));
    let out_of_memory = match &data.panic {
        Some(message) => is_allocation_failure(message),
        None => aborted,
    };
    if data.limits.memory_denied && out_of_memory {
        return ErrorKind::Limit(LimitKind::Memory {
            limit: data.limits.max_memory,
        })
        .into();
    }
    if data.limits.table_denied && aborted && data.panic.is_none() {
        return ErrorKind::Limit(LimitKind::Table {
            limit: data.limits.max_table_elements,
        })
        .into();
    }
    if let Some(message) = data.panic.take() {
        return ErrorKind::Panic { message }.into();
    }
    use wasmtime::Trap as W;
    let kind = match trap {
        Some(W::MemoryOutOfBounds | W::HeapMisaligned) => TrapKind::MemoryOutOfBounds,
        Some(W::UnreachableCodeReached) => TrapKind::Unreachable,
        Some(W::IntegerOverflow) => TrapKind::Arithmetic("integer overflow"),
        Some(W::IntegerDivisionByZero) => TrapKind::Arithmetic("integer division by zero"),
        Some(W::BadConversionToInteger) => TrapKind::Arithmetic("invalid conversion to integer"),
        Some(W::TableOutOfBounds) => TrapKind::IndirectCall("table index out of bounds"),
        Some(W::IndirectCallToNull) => TrapKind::IndirectCall("uninitialized table element"),
        Some(W::BadSignature) => TrapKind::IndirectCall("signature mismatch"),
        Some(other) => TrapKind::Other(other.to_string()),
        None if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
            return ErrorKind::Limit(LimitKind::Instances).into();
        }
        None => return Error::host(format_args!("{e:#}")),
    };
    ErrorKind::Trap(kind).into()
}

/// Whether a panic message is the one Rust's allocation error handler panics with
/// (`memory allocation of N bytes failed`).
fn is_allocation_failure(message: &str) -> bool {
    message
        .strip_prefix("memory allocation of ")
        .is_some_and(|rest| rest.ends_with(" bytes failed"))
}

impl<T: 'static> std::fmt::Debug for InstancePre<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePre")
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl<T: 'static> std::fmt::Debug for Instance<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}
