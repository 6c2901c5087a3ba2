//! What each wasmtime store carries: the host state, limits, timer, and call bookkeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::{Memory, TypedFunc};

use crate::clock::Clock;
use crate::resources::{MAX_MEMORIES, MAX_TABLES};
use membrane_runtime::{CallContext, Error, RuntimeLink, TrapKind};

/// The data of a membrane store.
pub(crate) struct StoreData<T> {
    pub(crate) state: T,
    pub(crate) limits: Limiter,
    pub(crate) timer: Timer,
    /// The message the guest's panic hook reported during the current call.
    pub(crate) panic: Option<String>,
    /// A fault detected by the host inside an intrinsic or host function (a bad
    /// pointer, a bad envelope, a nested call that trapped): the call's real error.
    pub(crate) fault: Option<Error>,
    /// The instance's exports, once instantiated (shared with the `Instance`, so a
    /// call borrows them while the store is borrowed mutably).
    pub(crate) handles: Option<Arc<Handles>>,
    /// Calls currently running in this store (0 between calls).
    pub(crate) depth: u32,
    pub(crate) max_depth: u32,
    /// Envelope settings of the engine.
    pub(crate) codec: membrane_codec::CodecConfig,
    /// Fuel each top-level call starts with (`None`: metering off).
    pub(crate) fuel_limit: Option<u64>,
    /// Calls of the `membrane.crc32` intrinsic since the instance was made.
    pub(crate) crc32_calls: u64,
    /// The runtime this instance belongs to, and its name there (`None`: an instance
    /// outside a runtime, whose `membrane_runtime` imports answer `NOT_IN_RUNTIME`).
    pub(crate) link: Option<RuntimeLink>,
    /// The context of the running top-level call (the last one between calls).
    pub(crate) ctx: CallContext,
    /// What the running top-level call used of its service budgets (the log's).
    pub(crate) services: membrane_runtime::ServiceBudget,
}

/// A guest function with the ABI signature `(ptr, len) -> ptr << 32 | len`.
pub(crate) type GuestFunc = TypedFunc<(u32, u32), u64>;

/// The exports a call needs, resolved once per instance.
pub(crate) struct Handles {
    pub(crate) instance: wasmtime::Instance,
    pub(crate) memory: Memory,
    pub(crate) alloc: TypedFunc<(u32, u32), u32>,
    /// Typed guest functions, by index in the module's function table, resolved on
    /// first use. (A `TypedFunc` is costly to clone: it is always used by reference.)
    pub(crate) functions: Box<[std::sync::OnceLock<GuestFunc>]>,
    /// The module, for its function table.
    pub(crate) module: crate::module::Module,
}

impl<T> StoreData<T> {
    pub(crate) fn new(
        state: T,
        limits: Limiter,
        timer: Timer,
        max_depth: u32,
        codec: membrane_codec::CodecConfig,
    ) -> StoreData<T> {
        StoreData {
            state,
            limits,
            timer,
            panic: None,
            fault: None,
            handles: None,
            depth: 0,
            max_depth,
            codec,
            fuel_limit: None,
            crc32_calls: 0,
            link: None,
            ctx: CallContext::host(0),
            services: membrane_runtime::ServiceBudget::default(),
        }
    }

    /// Clears what the previous top-level call left behind.
    #[inline]
    pub(crate) fn begin_call(&mut self) {
        self.panic = None;
        self.fault = None;
        self.services.reset();
        self.limits.forget_denials();
        self.timer.begin();
    }

    /// Records a fault unless an earlier one is already recorded (the first is the cause).
    #[cold]
    pub(crate) fn set_fault(&mut self, e: Error) {
        if self.fault.is_none() {
            self.fault = Some(e);
        }
    }
}

/// Memory and table limits, with a record of denials for error reporting.
///
/// A denial is remembered until the guest shows it went on after it: a later growth
/// that succeeds, or a call of an import (a host function or an intrinsic). A trap
/// that follows a remembered denial is the guest aborting on the failed allocation.
pub(crate) struct Limiter {
    pub(crate) max_memory: usize,
    pub(crate) max_table_elements: usize,
    pub(crate) memory_denied: bool,
    pub(crate) table_denied: bool,
    /// What the store may hold: one core instance, its memory and tables for a module
    /// ([`Limiter::shape_of_module`]); a component's core instances and theirs.
    pub(crate) max_instances: usize,
    pub(crate) max_memories: usize,
    pub(crate) max_tables: usize,
}

impl Limiter {
    /// The instances, memories and tables of one module's instance.
    pub(crate) fn shape_of_module(&mut self) {
        self.max_instances = 1;
        self.max_memories = MAX_MEMORIES as usize;
        self.max_tables = MAX_TABLES as usize;
    }

    /// The core instances, memories and tables of one component's instance.
    #[cfg(feature = "component")]
    pub(crate) fn shape_of_component(&mut self) {
        use crate::resources::component;
        self.max_instances = component::MAX_CORE_INSTANCES;
        self.max_memories = component::MAX_MEMORIES;
        self.max_tables = component::MAX_TABLES;
    }

    /// Forgets earlier denials: the guest went on after them.
    #[inline]
    pub(crate) fn forget_denials(&mut self) {
        self.memory_denied = false;
        self.table_denied = false;
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory;
        self.memory_denied = !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_table_elements;
        self.table_denied = !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_memories
    }

    fn tables(&self) -> usize {
        self.max_tables
    }
}

/// The per-instance timer: the call's deadline on the engine's clock, and the cancel
/// flag. Checked by the store's epoch callback once per epoch tick while the guest
/// runs, and by intrinsics between chunks of long work.
pub(crate) struct Timer {
    /// The engine's clock, when the engine has a timeout.
    clock: Option<Arc<Clock>>,
    /// Ticks a call may run (with `clock`).
    timeout_ticks: u64,
    /// The tick at which the current call times out.
    deadline: u64,
    pub(crate) cancel: Arc<AtomicBool>,
    /// What interrupted the current call, if anything.
    pub(crate) fired: Option<TrapKind>,
    /// Whether this timer counts a call in flight on the clock.
    entered: bool,
}

impl Timer {
    /// A timer of `timeout_ticks` on `clock` (`None`: no timeout), watching `cancel`.
    pub(crate) fn new(
        clock: Option<Arc<Clock>>,
        timeout_ticks: u64,
        cancel: Arc<AtomicBool>,
    ) -> Timer {
        Timer {
            clock,
            timeout_ticks,
            deadline: u64::MAX,
            cancel,
            fired: None,
            entered: false,
        }
    }

    /// Starts the clock of a top-level call (or an instantiation). A cancel issued
    /// before this point is forgotten: a cancel stops the call running when it is
    /// issued, never a later one.
    #[inline]
    fn begin(&mut self) {
        self.fired = None;
        self.cancel.store(false, Ordering::Relaxed);
        if let Some(clock) = &self.clock {
            if !self.entered {
                clock.enter();
                self.entered = true;
            }
            self.deadline = clock.deadline(self.timeout_ticks);
        }
    }

    /// Brings the running call's deadline forward to `at` if it is later (a call made
    /// for a module that must end by `at`). Without a clock the call has no deadline to
    /// bring forward: it runs under its fuel alone.
    #[inline]
    pub(crate) fn cap(&mut self, at: std::time::Instant) {
        if let Some(clock) = &self.clock {
            self.deadline = self.deadline.min(clock.tick_at(at));
        }
    }

    /// When the running call must end, if it has a deadline.
    pub(crate) fn deadline_instant(&self) -> Option<std::time::Instant> {
        match &self.clock {
            Some(clock) if self.deadline != u64::MAX => clock.instant_of(self.deadline),
            _ => None,
        }
    }

    /// Ends the clock of a top-level call (or an instantiation): the call no longer
    /// keeps the ticker awake.
    #[inline]
    pub(crate) fn end(&mut self) {
        if self.entered {
            if let Some(clock) = &self.clock {
                clock.leave();
            }
            self.entered = false;
        }
    }

    /// Whether the running call must stop now (cancelled, or past its deadline); records
    /// why in `fired`.
    pub(crate) fn expired(&mut self) -> bool {
        if self.cancel.load(Ordering::Relaxed) {
            self.fired = Some(TrapKind::Cancelled);
            return true;
        }
        if let Some(clock) = &self.clock
            && clock.touch() >= self.deadline
        {
            self.fired = Some(TrapKind::Timeout);
            return true;
        }
        false
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.end();
    }
}

/// Stops the running call of one instance from any thread.
///
/// Obtained from [`Instance::cancel_handle`](crate::Instance::cancel_handle), or made
/// with [`CancelHandle::new`] before an instance exists to stop its start function
/// ([`InstancePre::instantiate_with_cancel`](crate::InstancePre::instantiate_with_cancel)).
/// A handle stays bound to its instance across [`Instance::reset`](crate::Instance::reset).
///
/// `cancel` interrupts the call (or instantiation) running in that instance at the
/// guest's next epoch check, which compiled code makes at every loop back-edge and
/// function entry, and intrinsics between chunks of work; the call fails with
/// `TrapKind::Cancelled` and the instance is poisoned. Other instances are not
/// affected. A cancel stops only what runs when it is issued: while no call runs it
/// does nothing, and the next call starts normally (a supervisor that wants an
/// instance to run no more calls drops it, or stops handing it work).
#[derive(Clone, Debug)]
pub struct CancelHandle {
    pub(crate) flag: Arc<AtomicBool>,
    pub(crate) engine: wasmtime::Engine,
}

impl CancelHandle {
    /// A handle not yet bound to an instance, for
    /// [`InstancePre::instantiate_with_cancel`](crate::InstancePre::instantiate_with_cancel).
    pub fn new(engine: &crate::engine::Engine) -> CancelHandle {
        CancelHandle {
            flag: Arc::new(AtomicBool::new(false)),
            engine: engine.wasmtime().clone(),
        }
    }

    /// The handle of the instance (core or component) that runs in `store`.
    pub(crate) fn of_store<T>(store: &wasmtime::Store<StoreData<T>>) -> CancelHandle {
        CancelHandle {
            flag: store.data().timer.cancel.clone(),
            engine: store.engine().clone(),
        }
    }

    /// Interrupts the instance's running call.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // Makes every running guest of the engine reach its epoch deadline, so this one
        // sees the flag at its next check even when no ticker runs.
        self.engine.increment_epoch();
    }
}
