//! The [`Runtime`]: many named modules, each with its instance policy and limits,
//! called by `(module, function)`, added, hot-swapped and removed while calls run.
//! Knows no executor: modules come in as [`RuntimeModule`]s.

mod deadlock;
mod lifecycle;
mod messages;
mod pool;
mod route;
mod spec;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::executor::{ContentHash, GuestInstance, Instantiator, RuntimeModule};
use crate::services::{Bus, Grant, Services, check_imports};

use deadlock::WaitGraph;
use lifecycle::Starting;
pub use messages::{DeliveryFailure, IdleReport};
use pool::Pool;
pub use route::{CallContext, CallableId, Router, RuntimeLink, routed_error};
use route::{CallableFn, Callables};
pub use spec::{
    InstancePolicy, MAX_MODULE_NAME_LEN, ModuleCounters, ModuleInfo, ModuleSpec, RuntimeConfig,
};
use spec::{Stats, validate_name};

/// A runtime of many named modules.
///
/// `Send + Sync`, and a cheap clone of a shared handle: give a clone to each thread.
/// Modules are added with a [`ModuleSpec`] (an [`InstancePolicy`] and per-module fuel
/// and timeout), called by name ([`Runtime::call`], [`Runtime::call_raw`],
/// [`Runtime::call_with`]), swapped for a new version ([`Runtime::replace`]) and
/// removed ([`Runtime::remove`]) while calls run; [`Runtime::modules`] describes them.
///
/// A call that traps, panics, breaks the ABI or hits a limit poisons only the instance
/// it ran in: the runtime drops that instance and makes a fresh one for a later call
/// (a `Persistent` module's guest state is lost with it). No lock is held while guest
/// code runs: each call runs on an instance it has to itself (`docs/runtime.md`, "The
/// locking rule").
///
/// A module's lifecycle hooks run on every instance the runtime makes (start, before
/// the instance serves a call) and drops (stop: module removed or swapped out, runtime
/// dropped, after each call of a `FreshPerCall` module; not for a poisoned instance).
/// A failed stop is logged (`tracing`) and counted in `ModuleCounters::hook_failures`
/// (`docs/runtime.md`, "Lifecycle").
///
/// ```
/// use membrane_runtime::{ErrorKind, Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig::default());
/// let e = runtime.call_raw("nowhere", "f", b"").unwrap_err();
/// assert!(matches!(e.kind(), ErrorKind::UnknownModule { .. }));
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    /// The version of each module that serves new calls. Held only to look a module
    /// up, insert or remove one: never during a call.
    modules: RwLock<BTreeMap<String, Arc<Version>>>,
    /// The host callables guests may call by id.
    callables: Callables,
    /// The request id of the last call from the host.
    requests: AtomicU64,
    /// Which call chain waits for an instance of which pool: only calls that wait use
    /// it, to find deadlocks (`deadlock.rs`).
    waits: WaitGraph,
    /// The providers of the host services.
    services: Services,
    /// The message bus's queues.
    bus: Bus,
}

/// One version of a module: what `add` or `replace` installed. Calls hold it while
/// they run, so an old version lives until its last call ends.
struct Version {
    name: String,
    hash: ContentHash,
    functions: Vec<String>,
    spec: ModuleSpec,
    /// Makes started instances.
    instantiator: Starting,
    /// `None` for `FreshPerCall`. Shared (weakly) with the deadlock checks of calls
    /// that wait on it.
    pool: Option<Arc<Pool>>,
    /// Shared by every version of the module.
    stats: Arc<Stats>,
    /// Whether it exports a message handler.
    handles_messages: bool,
}

impl Version {
    /// Links `module` under `spec` and makes one instance (started), so that a module
    /// that cannot be instantiated or started is refused now rather than at its first
    /// call. A pool keeps it; a fresh-per-call module stops it at once.
    fn new(
        name: &str,
        module: &dyn RuntimeModule,
        spec: ModuleSpec,
        stats: Arc<Stats>,
        link: &RuntimeLink,
    ) -> Result<Version> {
        let max = spec.max_instances(name)?;
        let imports = module.imports();
        check_imports(
            name,
            imports.iter().map(|(m, n)| (m.as_str(), n.as_str())),
            &spec.grants,
        )?;
        let instantiator = Starting::new(module.limited(&spec.limits, link)?, stats.clone());
        let first = instantiator.instantiate()?;
        let pool = match max {
            Some(max) => {
                let pool = Pool::new(max);
                pool.put(first);
                Some(Arc::new(pool))
            }
            None => {
                lifecycle::stop(first, name, &stats);
                None
            }
        };
        Ok(Version {
            name: name.to_string(),
            hash: module.content_hash(),
            functions: module.function_names(),
            handles_messages: module.handles_messages(),
            spec,
            instantiator,
            pool,
            stats,
        })
    }

    /// Runs `call` on an instance of this version for the request `request`: one lent
    /// by its pool (waiting for one at most `wait`, the wait recorded in `waits` if
    /// given), or a fresh one (started before the call, stopped after it).
    fn on_instance<R>(
        &self,
        request: u64,
        wait: Duration,
        waits: Option<&WaitGraph>,
        call: impl FnOnce(&mut dyn GuestInstance) -> Result<R>,
    ) -> Result<R> {
        match &self.pool {
            Some(pool) => {
                let mut lease =
                    pool.acquire(&self.instantiator, wait, &self.name, request, waits)?;
                call(lease.instance()?)
            }
            None => {
                let mut instance = self.instantiator.instantiate()?;
                let result = call(&mut *instance);
                lifecycle::stop(instance, &self.name, &self.stats);
                result
            }
        }
    }

    fn info(&self) -> ModuleInfo {
        ModuleInfo {
            name: self.name.clone(),
            hash: self.hash,
            functions: self.functions.clone(),
            policy: self.spec.policy,
            limits: self.spec.limits,
            grants: self.spec.grants.clone(),
            handles_messages: self.handles_messages,
            counters: self.stats.snapshot(),
        }
    }
}

/// A version goes when the module is removed or swapped out, or the runtime dropped,
/// and the last call that held it has ended: its instances are all idle then, and each
/// is stopped. A version is dropped only outside every lock (after the module map's
/// lock is released, or by the call that held it last), so the stop hooks run outside
/// them too.
impl Drop for Version {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            for instance in pool.take_idle() {
                lifecycle::stop(instance, &self.name, &self.stats);
            }
        }
    }
}

impl Runtime {
    /// An empty runtime whose host services are the defaults ([`Services::default`]:
    /// no key-value store).
    pub fn new(config: RuntimeConfig) -> Runtime {
        Runtime::with_services(config, Services::default())
    }

    /// An empty runtime serving its modules' host services with `services`.
    pub fn with_services(config: RuntimeConfig, services: Services) -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                bus: Bus::new(config.bus),
                config,
                modules: RwLock::new(BTreeMap::new()),
                callables: Callables::default(),
                requests: AtomicU64::new(0),
                waits: WaitGraph::default(),
                services,
            }),
        }
    }

    /// The settings this runtime was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The providers of its host services.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Version>>> {
        // The map is consistent whatever panicked while holding it (one insert or
        // removal at a time, nothing else runs under the lock).
        self.inner
            .modules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Version>>> {
        self.inner
            .modules
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The version serving new calls of `name`.
    fn current(&self, name: &str) -> Result<Arc<Version>> {
        match self.read().get(name) {
            Some(version) => Ok(version.clone()),
            None => Err(unknown_module(name)),
        }
    }

    /// Adds `module` under `name`, run as `spec` says.
    ///
    /// A name is 1 to [`MAX_MODULE_NAME_LEN`] bytes of ASCII letters, digits, `_`, `-`
    /// and `.`, starting with a letter or a digit
    /// ([`ErrorKind::InvalidModuleName`] otherwise), and unused
    /// ([`ErrorKind::DuplicateModule`]). The spec's limits must be enforceable by the
    /// executor ([`ErrorKind::Config`]: a timeout on an engine without one, fuel on an
    /// engine without metering), a pool must allow an instance
    /// ([`ErrorKind::InvalidSpec`]), and one instance is made and started now: a module
    /// that cannot be instantiated, or whose start hook fails, is refused with that
    /// error (the guest's own as [`ErrorKind::Guest`]). A `Persistent` or `Pooled`
    /// module keeps that instance for its first call; a `FreshPerCall` module stops it.
    ///
    /// The module may import only the host services its spec grants
    /// ([`ErrorKind::NotGranted`] names the first import that is not); a `kv` grant
    /// needs a runtime with a key-value store ([`ErrorKind::Config`]) and a namespace no
    /// other module of the runtime is granted ([`ErrorKind::InvalidSpec`]). A module
    /// granted the bus gets its queue now.
    pub fn add(
        &self,
        name: &str,
        module: impl RuntimeModule + 'static,
        spec: ModuleSpec,
    ) -> Result<()> {
        validate_name(name)?;
        if self.read().contains_key(name) {
            return Err(duplicate_module(name));
        }
        if spec.grants.allows(Grant::Kv) && !self.inner.services.has_kv() {
            return Err(ErrorKind::Config {
                reason: format!(
                    "module `{name}` is granted a key-value namespace but the runtime has no key-value store (Services::kv)"
                ),
            }
            .into());
        }
        check_namespace(name, &spec, &self.read())?;
        // Linked, instantiated and started outside the lock: that runs guest code.
        let link = RuntimeLink::new(name, spec.grants.clone(), self);
        let version = Version::new(name, &module, spec, Arc::default(), &link)?;
        let mut modules = self.write();
        // Checked again under the lock: another thread may have added the name, or a
        // module with the namespace, meanwhile.
        let refused = if modules.contains_key(name) {
            Some((version, duplicate_module(name)))
        } else if let Err(e) = check_namespace(name, &version.spec, &modules) {
            Some((version, e))
        } else {
            if version.spec.grants.allows(Grant::Bus) {
                // Under the map's lock, so that a `remove` and a new `add` of the name
                // cannot interleave with it (the lock order is the map, then the bus).
                self.inner.bus.open(name);
            }
            modules.insert(name.to_string(), Arc::new(version));
            None
        };
        drop(modules);
        match refused {
            None => Ok(()),
            // This version (its instance stopped) is dropped outside the lock.
            Some((version, e)) => {
                drop(version);
                Err(e)
            }
        }
    }

    /// Swaps the module `name` for a new version, with the same spec and counters.
    ///
    /// The new version is linked and one instance of it made and started first (a
    /// failure, a failed start hook included, leaves the old version in place). Then,
    /// atomically for callers: calls that already started finish on the old version
    /// (its instances are stopped and dropped when the last of them ends, or before
    /// `replace` returns if none runs), and every call that starts after `replace`
    /// returns runs on the new one. No call is dropped or failed by the swap.
    pub fn replace(&self, name: &str, module: impl RuntimeModule + 'static) -> Result<()> {
        let old = self.current(name)?;
        let link = RuntimeLink::new(name, old.spec.grants.clone(), self);
        let version = Version::new(name, &module, old.spec.clone(), old.stats.clone(), &link)?;
        let mut modules = self.write();
        let replaced = match modules.get_mut(name) {
            // Still the same module (not removed, or removed and added again, meanwhile).
            Some(current) if Arc::ptr_eq(&current.stats, &old.stats) => {
                std::mem::replace(current, Arc::new(version))
            }
            _ => return Err(unknown_module(name)),
        };
        drop(modules);
        // The old version (and its idle instances, if no call holds it) is dropped
        // outside the lock.
        drop(replaced);
        Ok(())
    }

    /// Removes the module `name`: calls that start after this returns fail with
    /// [`ErrorKind::UnknownModule`]; calls already running finish normally (the module's
    /// instances are stopped and dropped when the last one ends, or before `remove`
    /// returns if none runs). The name may be used again at once.
    ///
    /// Its bus queue goes with it: messages still queued for it are discarded (and
    /// logged as a warning with their number). Deliver them first
    /// ([`Runtime::run_until_idle`]) if they matter.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut modules = self.write();
        let removed = modules.remove(name);
        let discarded = match &removed {
            Some(_) => self.inner.bus.close(name).len(),
            None => 0,
        };
        // Dropped after the lock is released (with its idle instances, if no call
        // holds it).
        drop(modules);
        if discarded > 0 {
            tracing::warn!(
                target: "membrane::runtime",
                module = name,
                "module `{name}` removed with {discarded} message(s) still queued for it: discarded"
            );
        }
        match removed {
            Some(_) => Ok(()),
            None => Err(unknown_module(name)),
        }
    }

    /// Every module, sorted by name (the map's order).
    pub fn modules(&self) -> Vec<ModuleInfo> {
        // Described outside the lock (a description takes the last error's mutex).
        let versions: Vec<Arc<Version>> = self.read().values().cloned().collect();
        versions.iter().map(|v| v.info()).collect()
    }

    /// The module `name`, if the runtime holds it.
    pub fn module(&self, name: &str) -> Option<ModuleInfo> {
        self.current(name).ok().map(|v| v.info())
    }

    /// Calls `function` of the module `module` with a raw payload and hands `read` the
    /// output payload where it lies (in guest memory, verified).
    ///
    /// Fails with [`ErrorKind::UnknownModule`] or [`ErrorKind::UnknownFunction`] before
    /// any guest code runs (not counted; the executor looks the function up on the
    /// instance the call was given), with [`ErrorKind::Busy`] when every instance of a
    /// `Persistent` or `Pooled` module stayed busy for `RuntimeConfig::max_wait`, and
    /// otherwise with what the call did. (A call from the host holds no instance while
    /// it waits, so it is never one of a deadlock: [`ErrorKind::Deadlock`] reaches it
    /// only as a module's error, from a call further down its chain.)
    pub fn call_with<R>(
        &self,
        module: &str,
        function: &str,
        input: &[u8],
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.run(module, self.host_call(), |instance, ctx| {
            let mut read = Some(read);
            let mut output = None;
            instance.call_envelope(ctx, function, input, &mut |bytes| {
                if let Some(read) = read.take() {
                    output = Some(read(bytes));
                }
            })?;
            output
                .ok_or_else(|| Error::host("the executor returned no output for a successful call"))
        })
    }

    /// The context of a new call from the host: a new request.
    #[inline]
    fn host_call(&self) -> CallContext {
        CallContext::host(self.next_request())
    }

    /// A new request id (never 0: 0 is "no request").
    #[inline]
    fn next_request(&self) -> u64 {
        self.inner.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// One call as `ctx` says on an instance of `module`'s current version, counted
    /// (`call` calls the function). The wait for an instance is bounded by `max_wait`
    /// and the chain's deadline (a call past it fails at once with a timeout, before
    /// anything is counted); a call from a module records its wait for the deadlock
    /// check (a call from the host holds no instance, so it never needs one).
    fn run<R>(
        &self,
        module: &str,
        ctx: CallContext,
        call: impl FnOnce(&mut dyn GuestInstance, CallContext) -> Result<R>,
    ) -> Result<R> {
        let wait = route::wait_within(self.inner.config.max_wait, ctx.deadline)?;
        let version = self.current(module)?;
        self.run_version(&version, wait, ctx, call)
    }

    /// [`Runtime::run`] on `version`, waiting at most `wait` for an instance.
    fn run_version<R>(
        &self,
        version: &Version,
        wait: Duration,
        ctx: CallContext,
        call: impl FnOnce(&mut dyn GuestInstance, CallContext) -> Result<R>,
    ) -> Result<R> {
        let waits = ctx.caller.is_some().then_some(&self.inner.waits);
        let request = ctx.request_id;
        version.stats.begin();
        let result = version.on_instance(request, wait, waits, |instance| call(instance, ctx));
        match &result {
            // Refused by the executor before any guest code ran (it looks the name up
            // itself, at no cost to the calls that find it): not a call.
            Err(e) if matches!(e.kind(), ErrorKind::UnknownFunction { .. }) => {
                version.stats.abandon();
            }
            _ => version.stats.end(&result),
        }
        result
    }

    /// Calls a function of the component `module` written as a WAVE call
    /// (`add(1, 2)`, `greet("ada")`, `iface#fn(..)`) and returns its result in WAVE,
    /// as [`Runtime::call_raw`] does for core modules: the same instance policies,
    /// limits and counters (`docs/components.md`, "In a runtime"). A core module
    /// refuses with [`ErrorKind::InvalidArguments`]: it is called with payloads.
    pub fn call_wave(&self, module: &str, call: &str) -> Result<String> {
        self.run(module, self.host_call(), |instance, ctx| {
            instance.call_wave(ctx, call)
        })
    }

    /// Calls `function` of the component `module` with arguments and results of the
    /// executor's own types, held by `call` (the wasmtime executor's
    /// `RuntimeComponents::call_values` makes it: use that).
    #[doc(hidden)]
    pub fn call_executor_values(
        &self,
        module: &str,
        function: &str,
        call: &mut dyn std::any::Any,
    ) -> Result<()> {
        self.run(module, self.host_call(), |instance, ctx| {
            instance.call_values(ctx, function, call)
        })
    }

    /// Calls `function` of the module `module` with raw payload bytes and returns a
    /// copy of the output payload (see [`Runtime::call_with`]).
    pub fn call_raw(&self, module: &str, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        // The executor's own copy: it verifies the output while copying it.
        self.run(module, self.host_call(), |instance, ctx| {
            instance.call_to_vec(ctx, function, input)
        })
    }

    /// Calls `function` of the module `module` with a serde value and deserializes its
    /// output (postcard both ways; see [`Runtime::call_with`]).
    pub fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        module: &str,
        function: &str,
        input: &I,
    ) -> Result<O> {
        let input = membrane_codec::to_payload(input).map_err(ErrorKind::Serialize)?;
        self.call_with(module, function, &input, |out| {
            membrane_codec::from_payload::<O>(out)
        })?
        .map_err(|e| ErrorKind::Deserialize(e).into())
    }
}

/// Host callables: host functions a guest calls by id (`docs/runtime.md`,
/// "Host callables").
impl Runtime {
    /// Registers a typed host callable and returns its id: a guest that is given the id
    /// calls it with `membrane_guest::call_callable::<I, O>(id, &input)`. The input is
    /// deserialized (postcard) as `I` (`ErrorCode::INVALID_INPUT` when it does not),
    /// the output serialized; the closure's [`HostError`](crate::HostError) reaches the
    /// guest as it is.
    ///
    /// Ids are drawn from the operating system's random source and never issued twice
    /// by one runtime; a guest cannot list them. Fails only if the OS has no random
    /// source to draw from.
    pub fn register_callable<I, O, F>(&self, f: F) -> Result<CallableId>
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(&CallContext, I) -> std::result::Result<O, crate::HostError> + Send + Sync + 'static,
    {
        self.register_callable_raw(move |ctx, input| {
            let input = membrane_codec::from_payload::<I>(input).map_err(|e| {
                crate::HostError::new(
                    membrane_types::ErrorCode::INVALID_INPUT,
                    format!("callable input does not deserialize: {e}"),
                )
            })?;
            let output = f(ctx, input)?;
            membrane_codec::to_payload(&output).map_err(|e| {
                crate::HostError::new(
                    membrane_types::ErrorCode::ENCODE_FAILED,
                    format!("callable output does not serialize: {e}"),
                )
            })
        })
    }

    /// Registers a host callable on raw payload bytes (what the guest passes to
    /// `membrane_guest::call_callable_bytes`) and returns its id (see
    /// [`Runtime::register_callable`]).
    pub fn register_callable_raw<F>(&self, f: F) -> Result<CallableId>
    where
        F: Fn(&CallContext, &[u8]) -> std::result::Result<Vec<u8>, crate::HostError>
            + Send
            + Sync
            + 'static,
    {
        let f: Arc<CallableFn> = Arc::new(f);
        self.inner.callables.register(f)
    }

    /// Unregisters a callable: a guest call that starts after this returns fails with
    /// `ErrorCode::UNKNOWN_CALLABLE`; one already running finishes. Fails with
    /// [`ErrorKind::UnknownCallable`] for an id that is not registered.
    pub fn unregister_callable(&self, id: CallableId) -> Result<()> {
        if self.inner.callables.unregister(id) {
            Ok(())
        } else {
            Err(ErrorKind::UnknownCallable { id: id.get() }.into())
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.read().keys().cloned().collect();
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .field("modules", &names)
            .finish()
    }
}

/// Refuses `spec` for the module `name` if it is granted a key-value namespace another
/// module of `modules` is granted.
fn check_namespace(
    name: &str,
    spec: &ModuleSpec,
    modules: &BTreeMap<String, Arc<Version>>,
) -> Result<()> {
    let Some(namespace) = spec.grants.kv_namespace() else {
        return Ok(());
    };
    match modules
        .values()
        .find(|v| v.name != name && v.spec.grants.kv_namespace() == Some(namespace))
    {
        Some(other) => Err(ErrorKind::InvalidSpec {
            module: name.to_string(),
            reason: format!(
                "the key-value namespace `{namespace}` is granted to module `{}` already",
                other.name
            ),
        }
        .into()),
        None => Ok(()),
    }
}

#[cold]
fn unknown_module(name: &str) -> Error {
    ErrorKind::UnknownModule {
        name: name.to_string(),
    }
    .into()
}

#[cold]
fn duplicate_module(name: &str) -> Error {
    ErrorKind::DuplicateModule {
        name: name.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests;
