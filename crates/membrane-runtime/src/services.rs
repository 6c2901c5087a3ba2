//! Standard host services for the modules of a [`Runtime`](crate::Runtime), each behind
//! a grant (`docs/runtime.md`, "Services"): log, clocks, randomness, effects, debug,
//! key-value storage and the message bus.
//!
//! - [`Grants`]: what a module may use, given when it is added (in its
//!   [`ModuleSpec`](crate::ModuleSpec)). Nothing is granted by default; a module that
//!   imports a service it was not granted is refused at `add`
//!   ([`ErrorKind::NotGranted`](crate::ErrorKind::NotGranted)).
//! - [`Services`]: the providers a runtime serves them with, each behind a trait with a
//!   production default ([`LogSink`]/[`TracingLog`], [`Clock`]/[`SystemClock`],
//!   [`RandomSource`]/[`OsRandom`], [`EffectHandler`]/[`NoEffects`],
//!   [`kv::KvStore`]/[`kv::RedbKv`]) and a deterministic double in
//!   [`crate::testing`].
//! - The bus ([`Message`], [`BusLimits`]): bounded per-module queues, delivered by
//!   [`Runtime::run_until_idle`](crate::Runtime::run_until_idle).
//!
//! The guest side is `membrane_guest::{log, clock, random, effects, debug, kv, bus}`;
//! the imports are `membrane_services.*` (`docs/abi.md` §10).

mod bus;
mod clock;
mod effects;
mod grants;
pub mod kv;
mod log;
mod random;
pub(crate) mod serve;
pub mod testing;

use std::fmt;
use std::sync::Arc;

pub(crate) use bus::Bus;
pub use bus::{BusError, BusLimits, MAX_CHANNEL_LEN, Message};
pub use clock::{Clock, SystemClock};
pub use effects::{Effect, EffectHandler, MAX_EFFECT_KIND_LEN, NoEffects};
pub(crate) use grants::check_imports;
pub use grants::{Grant, Grants, ServiceImport};
pub use log::{LogLevel, LogLimits, LogRecord, LogSink, LogSource, TracingLog};
pub use random::{MAX_RANDOM_REQUEST, OsRandom, RandomSource};
pub use serve::ServiceBudget;

use kv::KvStore;

/// The providers a [`Runtime`](crate::Runtime) serves its modules' services with
/// ([`Runtime::with_services`](crate::Runtime::with_services)).
///
/// The default: `tracing` events for log lines ([`TracingLog`]), the system's clocks
/// ([`SystemClock`]), the operating system's random source ([`OsRandom`]), every
/// effect refused ([`NoEffects`]) and no key-value store (a module granted `kv` is
/// refused at `add` until the runtime has one: give it
/// [`RedbKv`](kv::RedbKv) for a database on disk).
///
/// ```
/// use membrane_runtime::{Runtime, RuntimeConfig, Services};
/// use membrane_runtime::testing::{CapturingLog, FixedClock, MemoryKv, SeededRandom};
///
/// let log = CapturingLog::new();
/// let services = Services::new()
///     .log(log.clone())
///     .clock(FixedClock::at_nanos(1_700_000_000_000_000_000))
///     .random(SeededRandom::new(42))
///     .kv(MemoryKv::new());
/// let runtime = Runtime::with_services(RuntimeConfig::default(), services);
/// assert!(runtime.services().has_kv());
/// ```
#[derive(Clone)]
pub struct Services {
    pub(crate) log: Arc<dyn LogSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) effects: Arc<dyn EffectHandler>,
    pub(crate) kv: Option<Arc<dyn KvStore>>,
}

impl Default for Services {
    fn default() -> Services {
        Services {
            log: Arc::new(TracingLog),
            clock: Arc::new(SystemClock::new()),
            random: Arc::new(OsRandom),
            effects: Arc::new(NoEffects),
            kv: None,
        }
    }
}

impl Services {
    /// The default providers.
    pub fn new() -> Services {
        Services::default()
    }

    /// Sends log lines (and breakpoints, failed assertions) to `sink`.
    #[must_use]
    pub fn log(mut self, sink: impl LogSink) -> Services {
        self.log = Arc::new(sink);
        self
    }

    /// Reads the time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Services {
        self.clock = Arc::new(clock);
        self
    }

    /// Draws random bytes from `source`.
    #[must_use]
    pub fn random(mut self, source: impl RandomSource) -> Services {
        self.random = Arc::new(source);
        self
    }

    /// Hands effects to `handler`.
    #[must_use]
    pub fn effects(mut self, handler: impl EffectHandler) -> Services {
        self.effects = Arc::new(handler);
        self
    }

    /// Keeps modules' key-value data in `store`.
    #[must_use]
    pub fn kv(mut self, store: impl KvStore) -> Services {
        self.kv = Some(Arc::new(store));
        self
    }

    /// Keeps modules' key-value data in `store`, shared with its other holders.
    #[must_use]
    pub fn kv_shared(mut self, store: Arc<dyn KvStore>) -> Services {
        self.kv = Some(store);
        self
    }

    /// Whether a key-value store is configured.
    pub fn has_kv(&self) -> bool {
        self.kv.is_some()
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("kv", &self.kv.is_some())
            .finish_non_exhaustive()
    }
}
