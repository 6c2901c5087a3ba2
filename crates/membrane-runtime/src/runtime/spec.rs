//! What a host tells the runtime (its [`RuntimeConfig`], each module's [`ModuleSpec`]
//! and [`InstancePolicy`]), what the runtime tells back ([`ModuleInfo`],
//! [`ModuleCounters`]), and the rule for module names.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::executor::{ContentHash, LimitOverrides};
use crate::services::kv::KvLimits;
use crate::services::{BusLimits, Grants, LogLimits};

/// Settings of a [`Runtime`](crate::Runtime).
///
/// `#[non_exhaustive]` with public fields and chainable setters of the same names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// How long a call waits for an instance of a `Persistent` or `Pooled` module whose
    /// instances are all in use before it fails with
    /// [`ErrorKind::Busy`](crate::ErrorKind::Busy). `Duration::ZERO`: never wait.
    /// Default: 5 s (the engine's default timeout, so a call that would be served once
    /// a running call times out is served). A call from a module that waits in a
    /// deadlock with other call chains fails before, at once
    /// ([`ErrorKind::Deadlock`](crate::ErrorKind::Deadlock)).
    pub max_wait: Duration,
    /// How much one call of a module may log (`Grants::log`).
    pub log: LogLimits,
    /// The bounds of the message bus's queues (`Grants::bus`).
    pub bus: BusLimits,
    /// The quotas of each module's key-value namespace (`Grants::kv`).
    pub kv: KvLimits,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            max_wait: Duration::from_secs(5),
            log: LogLimits::default(),
            bus: BusLimits::default(),
            kv: KvLimits::default(),
        }
    }
}

/// Chainable setters, one per field.
impl RuntimeConfig {
    crate::__chainable_setters! { RuntimeConfig,
        max_wait => max_wait: Duration;
        log => log: LogLimits;
        bus => bus: BusLimits;
        kv => kv: KvLimits;
    }
}

/// How the runtime makes and keeps the instances of one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstancePolicy {
    /// One instance whose guest state lasts across calls; calls are serialized (a call
    /// waits while another runs, up to `RuntimeConfig::max_wait`).
    Persistent,
    /// Up to `max` instances made on demand and kept; calls run concurrently, one per
    /// instance. Which instance serves a call is not specified: keep no state across
    /// calls in a pooled module.
    Pooled {
        /// The most instances that may exist at once (at least 1).
        max: usize,
    },
    /// A fresh instance for every call, dropped after it: nothing survives a call, and
    /// calls never wait for each other.
    FreshPerCall,
}

/// How a module is run: its [`InstancePolicy`], its per-call limits, and the host
/// services it is granted ([`Grants`]: none by default).
///
/// `#[non_exhaustive]` with public fields and chainable setters of the same names;
/// `fuel` and `timeout` set the fields of `limits`.
///
/// ```
/// use membrane_runtime::{Grant, Grants, InstancePolicy, ModuleSpec};
/// use std::time::Duration;
///
/// let spec = ModuleSpec::pooled(4)
///     .timeout(Some(Duration::from_millis(100)))
///     .grants(Grants::none().log().clock());
/// assert_eq!(spec.policy, InstancePolicy::Pooled { max: 4 });
/// assert_eq!(spec.limits.fuel, None); // the engine's
/// assert!(spec.grants.allows(Grant::Log));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleSpec {
    /// How instances are made and kept. Default: [`InstancePolicy::Persistent`].
    pub policy: InstancePolicy,
    /// Fuel and timeout of each call, where they differ from the engine's. Default:
    /// none (the engine's).
    pub limits: LimitOverrides,
    /// The host services the module may use. Default: none.
    pub grants: Grants,
}

impl Default for ModuleSpec {
    fn default() -> ModuleSpec {
        ModuleSpec::persistent()
    }
}

impl ModuleSpec {
    /// A spec with this policy and the engine's limits.
    pub fn new(policy: InstancePolicy) -> ModuleSpec {
        ModuleSpec {
            policy,
            limits: LimitOverrides::default(),
            grants: Grants::none(),
        }
    }

    /// [`InstancePolicy::Persistent`] with the engine's limits.
    pub fn persistent() -> ModuleSpec {
        ModuleSpec::new(InstancePolicy::Persistent)
    }

    /// [`InstancePolicy::Pooled`] of up to `max` instances, with the engine's limits.
    pub fn pooled(max: usize) -> ModuleSpec {
        ModuleSpec::new(InstancePolicy::Pooled { max })
    }

    /// [`InstancePolicy::FreshPerCall`] with the engine's limits.
    pub fn fresh_per_call() -> ModuleSpec {
        ModuleSpec::new(InstancePolicy::FreshPerCall)
    }

    crate::__chainable_setters! { ModuleSpec,
        policy => policy: InstancePolicy;
        limits => limits: LimitOverrides;
        grants => grants: Grants;
        limits.fuel => fuel: Option<u64>;
        limits.timeout => timeout: Option<Duration>;
    }

    /// How many instances may exist at once (`None`: no bound, fresh per call).
    pub(crate) fn max_instances(&self, module: &str) -> Result<Option<usize>> {
        match self.policy {
            InstancePolicy::Persistent => Ok(Some(1)),
            InstancePolicy::Pooled { max: 0 } => Err(ErrorKind::InvalidSpec {
                module: module.to_string(),
                reason: "a pool needs at least one instance (`Pooled { max: 0 }`)".into(),
            }
            .into()),
            InstancePolicy::Pooled { max } => Ok(Some(max)),
            InstancePolicy::FreshPerCall => Ok(None),
        }
    }
}

/// What the runtime knows of one module ([`Runtime::modules`](crate::Runtime::modules)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleInfo {
    /// Its name in the runtime.
    pub name: String,
    /// The content hash of the version now serving new calls.
    pub hash: ContentHash,
    /// The functions it exports for calls.
    pub functions: Vec<String>,
    /// How its instances are made and kept.
    pub policy: InstancePolicy,
    /// Its per-call limits where they differ from the engine's.
    pub limits: LimitOverrides,
    /// The host services it may use.
    pub grants: Grants,
    /// Whether it exports a message handler (`#[membrane_guest::on_message]`), to which
    /// [`Runtime::run_until_idle`](crate::Runtime::run_until_idle) delivers its
    /// messages.
    pub handles_messages: bool,
    /// What its calls did since it was added (kept across `replace`).
    pub counters: ModuleCounters,
}

/// Counters of one module's calls. Every call of a function the module exports is
/// counted once in `calls` when it ends, and once in exactly one of the other counters
/// but `in_flight` and `hook_failures`:
/// `calls == ok + guest_errors + traps + limits_hit + busy + other_errors` once no call
/// runs. Lifecycle hooks are not calls: `hook_failures` counts them apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleCounters {
    /// Calls that ended.
    pub calls: u64,
    /// Calls that returned an output.
    pub ok: u64,
    /// Calls that returned the guest's error envelope ([`ErrorKind::Guest`]).
    pub guest_errors: u64,
    /// Calls that trapped or panicked ([`ErrorKind::Trap`] other than out of fuel and
    /// timeout, [`ErrorKind::Panic`]).
    pub traps: u64,
    /// Calls stopped by a limit: out of fuel, timeout ([`ErrorKind::Trap`]) or
    /// [`ErrorKind::Limit`].
    pub limits_hit: u64,
    /// Calls refused because every instance stayed busy ([`ErrorKind::Busy`]), is
    /// held by the calling chain ([`ErrorKind::Reentry`]), or is held by chains that
    /// wait in a cycle with the calling one ([`ErrorKind::Deadlock`]).
    pub busy: u64,
    /// Calls that failed otherwise (an ABI violation, an instance that could not be
    /// made, ...).
    pub other_errors: u64,
    /// Calls running now (or waiting for an instance).
    pub in_flight: u64,
    /// The message of the last failed call.
    pub last_error: Option<String>,
    /// Lifecycle hooks of the module's instances that failed (`docs/runtime.md`,
    /// "Lifecycle"): stop hooks (logged, nothing else reports them), and start hooks,
    /// whose error also refused a `replace` or failed the call the instance was made
    /// for (that call is counted as failed too). Not a call: in no sum above.
    pub hook_failures: u64,
}

/// The live counters behind [`ModuleCounters`], shared by the versions of a module.
/// `calls` is not kept: it is the sum of the outcomes.
#[derive(Default)]
pub(crate) struct Stats {
    ok: AtomicU64,
    guest_errors: AtomicU64,
    traps: AtomicU64,
    limits_hit: AtomicU64,
    busy: AtomicU64,
    other_errors: AtomicU64,
    in_flight: AtomicU64,
    last_error: Mutex<Option<String>>,
    hook_failures: AtomicU64,
}

impl Stats {
    /// Counts a call in.
    #[inline]
    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts out a call that did not happen (its function does not exist).
    #[inline]
    pub(crate) fn abandon(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a call out with its result.
    #[inline]
    pub(crate) fn end<R>(&self, result: &Result<R>) {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(e) => self.failed(e),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a lifecycle hook that failed.
    #[cold]
    pub(crate) fn hook_failed(&self) {
        self.hook_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the last error; returns the counter of its kind.
    #[cold]
    fn failed(&self, e: &Error) -> &AtomicU64 {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
        use crate::error::TrapKind;
        match e.kind() {
            ErrorKind::Guest { .. } => &self.guest_errors,
            ErrorKind::Trap(TrapKind::OutOfFuel | TrapKind::Timeout) | ErrorKind::Limit(_) => {
                &self.limits_hit
            }
            ErrorKind::Trap(_) | ErrorKind::Panic { .. } => &self.traps,
            ErrorKind::Busy { .. } | ErrorKind::Reentry { .. } | ErrorKind::Deadlock { .. } => {
                &self.busy
            }
            _ => &self.other_errors,
        }
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> ModuleCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (ok, guest_errors, traps) = (get(&self.ok), get(&self.guest_errors), get(&self.traps));
        let (limits_hit, busy, other_errors) = (
            get(&self.limits_hit),
            get(&self.busy),
            get(&self.other_errors),
        );
        ModuleCounters {
            calls: ok + guest_errors + traps + limits_hit + busy + other_errors,
            ok,
            guest_errors,
            traps,
            limits_hit,
            busy,
            other_errors,
            in_flight: get(&self.in_flight),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            hook_failures: get(&self.hook_failures),
        }
    }
}

/// The longest module name, in bytes.
pub const MAX_MODULE_NAME_LEN: usize = 64;

/// Checks a module name: 1 to [`MAX_MODULE_NAME_LEN`] bytes of ASCII letters, digits,
/// `_`, `-` and `.`, starting with a letter or a digit.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("a module name cannot be empty".to_string())
    } else if name.len() > MAX_MODULE_NAME_LEN {
        Some(format!(
            "{} bytes, at most {MAX_MODULE_NAME_LEN} allowed",
            name.len()
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("a module name starts with an ascii letter or digit".to_string())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map(|c| format!("{c:?} is not allowed (ascii letters, digits, `_`, `-` and `.` are)"))
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(ErrorKind::InvalidModuleName {
            name: name.chars().take(MAX_MODULE_NAME_LEN).collect(),
            reason,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted and refused names, each refusal with the reason it gives.
    #[test]
    fn module_names() {
        for good in [
            "a",
            "echo",
            "Echo-2",
            "v1.2_beta",
            "9lives",
            &"x".repeat(64),
        ] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        let long = "y".repeat(65);
        for (bad, reason) in [
            ("", "empty"),
            (long.as_str(), "65 bytes"),
            ("-x", "starts with"),
            (".x", "starts with"),
            ("a b", "' ' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("é", "starts with"),
            ("aé", "'é' is not allowed"),
        ] {
            let e = validate_name(bad).unwrap_err();
            match e.kind() {
                ErrorKind::InvalidModuleName { name, reason: r } => {
                    assert!(r.contains(reason), "{bad:?}: {r}");
                    assert!(name.chars().count() <= MAX_MODULE_NAME_LEN, "{name}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    /// Each kind of failure lands in one counter, and the counters add up.
    #[test]
    fn counters_add_up() {
        use crate::error::{LimitKind, TrapKind};
        let stats = Stats::default();
        let results: Vec<Result<()>> = vec![
            Ok(()),
            Err(ErrorKind::Guest {
                code: membrane_types::ErrorCode(1001),
                message: "no".into(),
            }
            .into()),
            Err(ErrorKind::Trap(TrapKind::Unreachable).into()),
            Err(ErrorKind::Panic {
                message: "boom".into(),
            }
            .into()),
            Err(ErrorKind::Trap(TrapKind::OutOfFuel).into()),
            Err(ErrorKind::Trap(TrapKind::Timeout).into()),
            Err(ErrorKind::Limit(LimitKind::Memory { limit: 1 }).into()),
            Err(ErrorKind::Busy {
                module: "m".into(),
                instances: 1,
                waited: Duration::ZERO,
            }
            .into()),
            Err(Error::host("last")),
        ];
        for r in &results {
            stats.begin();
            stats.end(r);
        }
        // A hook is not a call.
        stats.hook_failed();
        let c = stats.snapshot();
        assert_eq!(
            (c.calls, c.ok, c.guest_errors, c.traps, c.limits_hit, c.busy),
            (9, 1, 1, 2, 3, 1)
        );
        assert_eq!((c.other_errors, c.in_flight, c.hook_failures), (1, 0, 1));
        assert_eq!(c.last_error.as_deref(), Some("host failure: last"));
    }
}
