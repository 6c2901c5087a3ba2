//! Instances: a module linked with its host functions ([`Module::prepare`]), instances
//! made from it, and their top-level calls (the call path itself is `call.rs`).

use membrane_codec::Codec;
use membrane_runtime::protocol::{read_in_place, read_to_vec};
use membrane_types::{ALLOC_EXPORT, MEMORY_EXPORT};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::{Linker, Store, UpdateDeadline};

use membrane_runtime::executor::Hook;
use membrane_runtime::{
    AbiViolation, CallContext, Error, ErrorKind, LimitKind, LimitOverrides, Result, RuntimeLink,
};

use crate::call::{begin_top_level_call, call_top_level};
use crate::engine::Engine;
use crate::host_fn::{HostFunctions, provided};
use crate::module::Module;
use crate::signature::{describe, fits};
use crate::store::{CancelHandle, Handles, Limiter, StoreData, Timer};
use crate::trap::classify;

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

/// The per-call limits of one instance's store: the fuel each call starts with and the
/// epoch ticks of its timeout. The engine's by default; a runtime module's own
/// (`LimitOverrides`) when checked against the engine by [`CallLimits::new`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallLimits {
    fuel: Option<u64>,
    timeout_ticks: u64,
}

impl CallLimits {
    /// The engine's limits with `overrides` applied; refuses what the engine cannot
    /// enforce: fuel without metering, a timeout without the clock (the engine's epoch
    /// ticker runs only when the engine has a timeout).
    pub(crate) fn new(engine: &Engine, overrides: &LimitOverrides) -> Result<CallLimits> {
        let limits = &engine.config().limits;
        if overrides.fuel.is_some() && limits.fuel.is_none() {
            return Err(ErrorKind::Config {
                reason: "a module asks for fuel but the engine does not meter it (its `fuel` is None); give the engine a fuel limit".into(),
            }
            .into());
        }
        if overrides.timeout.is_some() && engine.clock().is_none() {
            return Err(ErrorKind::Config {
                reason: "a module asks for a timeout but the engine has no timeout clock (its `timeout` is None); give the engine a timeout".into(),
            }
            .into());
        }
        Ok(CallLimits::resolved(
            engine,
            overrides.fuel.or(limits.fuel),
            overrides.timeout.or(limits.timeout),
        ))
    }

    /// The engine's own limits.
    pub(crate) fn of(engine: &Engine) -> CallLimits {
        let limits = &engine.config().limits;
        CallLimits::resolved(engine, limits.fuel, limits.timeout)
    }

    /// `fuel` and `timeout` in the store's terms (`timeout` in ticks of the engine's
    /// clock).
    fn resolved(engine: &Engine, fuel: Option<u64>, timeout: Option<Duration>) -> CallLimits {
        let tick = engine.config().epoch_tick.as_nanos().max(1);
        let timeout_ticks = match timeout {
            Some(t) => u64::try_from(t.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX),
            None => u64::MAX,
        };
        CallLimits {
            fuel,
            timeout_ticks,
        }
    }
}

impl Module {
    /// Links `host` functions (and the ABI intrinsics) to this module once, and returns
    /// a pre-linked [`InstancePre`] that makes instances of it. Fails, naming each of
    /// them, if the module imports anything the host does not provide.
    pub fn prepare<T: Send + 'static>(&self, host: &HostFunctions<T>) -> Result<InstancePre<T>> {
        InstancePre::new(self.clone(), host)
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
                Some(provided) if !fits(&import.ty(), provided) => {
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
        let limits = CallLimits::of(self.module.engine());
        self.instantiate_inner(state, Arc::new(AtomicBool::new(false)), limits, None)
            .map_err(|(e, _)| e)
    }

    /// [`InstancePre::instantiate`] under `limits` instead of the engine's, for the
    /// runtime `link` names (if any).
    pub(crate) fn instantiate_limited(
        &self,
        state: T,
        limits: CallLimits,
        link: Option<RuntimeLink>,
    ) -> Result<Instance<T>> {
        self.instantiate_inner(state, Arc::new(AtomicBool::new(false)), limits, link)
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
        let limits = CallLimits::of(self.module.engine());
        self.instantiate_inner(state, cancel.flag.clone(), limits, None)
            .map_err(|(e, _)| e)
    }

    /// Makes an instance with `state`, watching `cancel`, its calls under `call_limits`,
    /// linked to a runtime by `link`; on failure, hands the state back with the error.
    fn instantiate_inner(
        &self,
        state: T,
        cancel: Arc<AtomicBool>,
        call_limits: CallLimits,
        link: Option<RuntimeLink>,
    ) -> std::result::Result<Instance<T>, (Error, T)> {
        let engine = self.module.engine();
        let config = engine.config();
        if let Err(e) = crate::native_stack::check(config.limits.max_wasm_stack) {
            return Err((e, state));
        }
        let mut store = new_store(engine, state, cancel, &call_limits, link);
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
        store.data_mut().timer.end();
        match self.handles(&mut store, instance) {
            Ok(handles) => Ok(Instance {
                store,
                handles,
                poisoned: None,
                limits: call_limits,
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
    /// state survives between calls, and a failing call cannot affect the next. Runs no
    /// lifecycle hook (a `Runtime`'s `FreshPerCall` module runs start and stop around
    /// each call).
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
///
/// A module's lifecycle hooks run only when the host asks: [`Instance::start`] and
/// [`Instance::stop`].
pub struct Instance<T: 'static> {
    store: Store<StoreData<T>>,
    handles: Arc<Handles>,
    poisoned: Option<String>,
    /// The limits it was made with, kept by [`Instance::reset`].
    limits: CallLimits,
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
    #[inline]
    fn call_envelope<R>(
        &mut self,
        name: &str,
        input: &[u8],
        read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
    ) -> Result<R> {
        self.call_at(1, None, name, input, read)
    }

    /// A top-level call as `ctx` says (a call from a runtime, `GuestInstance`): the
    /// guest may read `ctx`, which also gives the call's depth in its chain (refused
    /// beyond `max_call_depth` before any guest code runs, poisoning nothing) and a
    /// deadline the call does not outlive.
    pub(crate) fn call_in_context<R>(
        &mut self,
        ctx: CallContext,
        name: &str,
        input: &[u8],
        read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
    ) -> Result<R> {
        let limit = self.store.data().max_depth;
        if ctx.depth > limit {
            return Err(ErrorKind::Limit(LimitKind::CallDepth { limit }).into());
        }
        let (depth, deadline) = (ctx.depth, ctx.deadline);
        self.store.data_mut().ctx = ctx;
        self.call_at(depth, deadline, name, input, read)
    }

    /// A top-level call at `depth` in its chain, ending by `deadline` at the latest.
    #[inline(always)]
    fn call_at<R>(
        &mut self,
        depth: u32,
        deadline: Option<std::time::Instant>,
        name: &str,
        input: &[u8],
        read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
    ) -> Result<R> {
        self.top_level(deadline, |store, handles| {
            call_top_level(store, handles, depth, name, input, read)
        })
    }

    /// Runs guest code at the top level: refused on a poisoned instance or a thread
    /// short of stack, armed (fuel, deadline, brought forward to `deadline`) before
    /// `run` and disarmed after; an error that poisons poisons the instance.
    // Always inlined: it is the frame of every call, and `run` is one closure.
    #[inline(always)]
    fn top_level<R>(
        &mut self,
        deadline: Option<std::time::Instant>,
        run: impl FnOnce(&mut Store<StoreData<T>>, &Handles) -> Result<R>,
    ) -> Result<R> {
        if let Some(reason) = &self.poisoned {
            return Err(ErrorKind::Poisoned {
                reason: reason.clone(),
            }
            .into());
        }
        crate::native_stack::check(self.handles.module.engine().config().limits.max_wasm_stack)?;
        begin_top_level_call(&mut self.store)?;
        if let Some(deadline) = deadline {
            self.store.data_mut().timer.cap(deadline);
        }
        let result = run(&mut self.store, &self.handles);
        self.store.data_mut().timer.end();
        if let Err(e) = &result
            && e.poisons()
        {
            self.poisoned = Some(e.to_string());
        }
        result
    }

    /// Runs the module's start hook, `__membrane_start` (`docs/abi.md` §8), if it
    /// exports one; `Ok(())` if not.
    ///
    /// An `Instance` never runs a hook by itself: a host that uses instances directly
    /// calls `start` once on each new instance (after [`InstancePre::instantiate`] or
    /// [`Instance::reset`]) before its first call, and [`Instance::stop`] before
    /// dropping it; a [`Runtime`](membrane_runtime::Runtime) does both for its modules.
    ///
    /// The hook runs as a top-level call: the per-call arena reset, the instance's fuel
    /// and timeout, cancellable through [`Instance::cancel_handle`]. Its error is the
    /// guest's ([`ErrorKind::Guest`], the instance stays usable); a trap, a panic, an ABI
    /// violation or a limit poisons the instance as a call's would, and a poisoned
    /// instance refuses to run it ([`ErrorKind::Poisoned`]).
    pub fn start(&mut self) -> Result<()> {
        self.run_hook(Hook::Start)
    }

    /// Runs the module's stop hook, `__membrane_stop` (`docs/abi.md` §8), if it exports
    /// one; `Ok(())` if not. Like [`Instance::start`]: a top-level call, never run by an
    /// `Instance` by itself.
    pub fn stop(&mut self) -> Result<()> {
        self.run_hook(Hook::Stop)
    }

    /// Runs `hook` as a top-level call, outside any request (its context is a call from
    /// the host with request id 0, not the last call's).
    pub(crate) fn run_hook(&mut self, hook: Hook) -> Result<()> {
        self.store.data_mut().ctx = CallContext::host(0);
        self.top_level(None, |store, handles| {
            crate::hook::run_hook(store, handles, hook)
        })
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
        CancelHandle::of_store(&self.store)
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
    /// (guest state is lost), the per-call fuel and timeout it was made with, and the
    /// cancel handle: a [`CancelHandle`] taken before the reset cancels the new
    /// instance's calls. Clears poisoning. Runs no lifecycle hook: call
    /// [`Instance::start`] on the new instance (and [`Instance::stop`] on the old one
    /// first, if it is healthy).
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
        let link = self.store.data().link.clone();
        match pre.instantiate_inner(state, cancel, self.limits, link) {
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

/// A store for one instance on `engine` with `state`: memory and table limits, fuel and
/// timeout as `call_limits` say, cancelled by `cancel`, linked to a runtime by `link`.
/// Core instances and components alike.
pub(crate) fn new_store<T>(
    engine: &Engine,
    state: T,
    cancel: Arc<AtomicBool>,
    call_limits: &CallLimits,
    link: Option<RuntimeLink>,
) -> Store<StoreData<T>> {
    let config = engine.config();
    let mut limits = Limiter {
        max_memory: config.limits.max_memory,
        max_table_elements: config.limits.max_table_elements,
        memory_denied: false,
        table_denied: false,
        max_instances: 0,
        max_memories: 0,
        max_tables: 0,
    };
    limits.shape_of_module();
    let mut data = StoreData::new(
        state,
        limits,
        Timer::new(engine.clock().cloned(), call_limits.timeout_ticks, cancel),
        config.limits.max_call_depth,
        config.codec,
    );
    data.fuel_limit = call_limits.fuel;
    data.link = link;
    let mut store = Store::new(engine.wasmtime(), data);
    store.limiter(|data| &mut data.limits);
    store.epoch_deadline_callback(|mut ctx| {
        Ok(if ctx.data_mut().timer.expired() {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        })
    });
    store
}
