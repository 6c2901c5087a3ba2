//! What each wasmtime store carries: the host state, limits, timer, and call bookkeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::{Memory, TypedFunc};

use crate::error::{Error, TrapKind};

/// The data of a membrane store.
pub(crate) struct StoreData<T> {
    pub(crate) state: T,
    pub(crate) limits: Limits,
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
    pub(crate) module: crate::Module,
}

impl<T> StoreData<T> {
    pub(crate) fn new(
        state: T,
        limits: Limits,
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
        }
    }

    /// Clears what the previous top-level call left behind.
    #[inline]
    pub(crate) fn begin_call(&mut self) {
        self.panic = None;
        self.fault = None;
        self.limits.memory_denied = false;
        self.limits.table_denied = false;
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

/// Linear memories an instance may have: the one the ABI exports.
pub(crate) const MAX_MEMORIES: u32 = 1;

/// Tables an instance may have: Rust guests have one; a few more are harmless and
/// bounded.
pub(crate) const MAX_TABLES: u32 = 4;

/// Memory and table limits, with a record of denials for error reporting.
pub(crate) struct Limits {
    pub(crate) max_memory: usize,
    pub(crate) max_table_elements: usize,
    pub(crate) memory_denied: bool,
    pub(crate) table_denied: bool,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory;
        self.memory_denied |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_table_elements;
        self.table_denied |= !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }
}

/// The per-instance clock: counts engine epoch ticks against the timeout, and watches
/// the cancel flag. Checked by the store's epoch callback once per tick.
pub(crate) struct Timer {
    /// Ticks a call may run; `u64::MAX` for no timeout.
    pub(crate) timeout_ticks: u64,
    pub(crate) ticks_left: u64,
    pub(crate) cancel: Arc<AtomicBool>,
    /// What interrupted the current call, if anything.
    pub(crate) fired: Option<TrapKind>,
}

impl Timer {
    pub(crate) fn new(timeout_ticks: u64) -> Timer {
        Timer {
            timeout_ticks,
            ticks_left: timeout_ticks,
            cancel: Arc::new(AtomicBool::new(false)),
            fired: None,
        }
    }

    #[inline]
    fn begin(&mut self) {
        self.ticks_left = self.timeout_ticks;
        self.fired = None;
        self.cancel.store(false, Ordering::Relaxed);
    }

    /// One epoch tick passed while the guest ran: whether to interrupt it.
    pub(crate) fn tick(&mut self) -> bool {
        if self.cancel.load(Ordering::Relaxed) {
            self.fired = Some(TrapKind::Cancelled);
            return true;
        }
        self.ticks_left = self.ticks_left.saturating_sub(1);
        if self.ticks_left == 0 {
            self.fired = Some(TrapKind::Timeout);
            return true;
        }
        false
    }
}

/// Stops the running call of one instance from any thread.
///
/// Obtained from `Instance::cancel_handle`. `cancel` interrupts the call running in
/// that instance within one epoch tick; the call fails with `TrapKind::Cancelled` and
/// the instance is poisoned. Other instances are not affected. A cancel while no call
/// runs is forgotten when the next call starts.
#[derive(Clone, Debug)]
pub struct CancelHandle {
    pub(crate) flag: Arc<AtomicBool>,
}

impl CancelHandle {
    /// Interrupts the instance's running call.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}
