//! Calls that start in a guest: to a function of another module, to a host callable,
//! or for the runtime's list of modules. What an instance is told about the call it
//! runs ([`CallContext`]), what it holds to reach its runtime ([`RuntimeLink`],
//! [`Router`]), host callables ([`CallableId`]), and how a failed call reaches the guest
//! that made it: a [`HostError`] with a code of its own (`docs/runtime.md`, "Errors").

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use membrane_types::{ErrorCode, RESERVED_EXPORT_PREFIX};

use super::{Inner, Runtime};
use crate::error::{Error, ErrorKind, HostError, TrapKind};
use crate::services::serve::{self, Host};
use crate::services::{Grant, Grants, ServiceBudget, ServiceImport};

/// What a runtime tells an instance about the call it runs: who called, the request it
/// belongs to, how deep in the chain it is, and when the chain must end.
///
/// `#[non_exhaustive]`: made by the runtime ([`CallContext::host`] for a call from the
/// host, [`CallContext::routed`] for a call from a module).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallContext {
    /// The module that made the call; `None`: the host.
    pub caller: Option<Arc<str>>,
    /// The request: unique per call from the host (within its runtime), the same for
    /// every call of the chain it starts.
    pub request_id: u64,
    /// 1 for a call from the host, one more per call from module to module (and per
    /// call a host function nests in an instance).
    pub depth: u32,
    /// When the chain must end: the calling module's own deadline. The callee runs
    /// under its own timeout too, whichever ends first. `None`: only the callee's own.
    pub deadline: Option<Instant>,
}

impl CallContext {
    /// A call from the host, at depth 1 with no deadline but the callee's own.
    pub fn host(request_id: u64) -> CallContext {
        CallContext {
            caller: None,
            request_id,
            depth: 1,
            deadline: None,
        }
    }

    /// A call made by the module `caller`, `depth` deep in the chain of `request_id`,
    /// ending by `deadline` at the latest.
    pub fn routed(
        caller: Arc<str>,
        request_id: u64,
        depth: u32,
        deadline: Option<Instant>,
    ) -> CallContext {
        CallContext {
            caller: Some(caller),
            request_id,
            depth,
            deadline,
        }
    }
}

/// What a [`Runtime`] gives every instance of a module it holds: the module's name, its
/// [`Grants`], and the [`Router`] back to the runtime. An executor keeps it with the
/// instance and serves the `membrane_runtime` imports (`docs/abi.md` §8) and the
/// `membrane_services` imports (§10) with it.
#[derive(Clone)]
pub struct RuntimeLink {
    /// The module's name and grants, behind one `Arc`: a routed call clones the link.
    module: Arc<LinkedModule>,
    router: Router,
}

/// What a link knows of its module.
struct LinkedModule {
    name: Arc<str>,
    grants: Grants,
}

impl RuntimeLink {
    /// The link of `runtime`'s module `module`, granted `grants` (what [`Runtime::add`]
    /// hands the module's [`RuntimeModule::limited`](crate::RuntimeModule::limited)).
    pub fn new(module: &str, grants: Grants, runtime: &Runtime) -> RuntimeLink {
        RuntimeLink {
            module: Arc::new(LinkedModule {
                name: Arc::from(module),
                grants,
            }),
            router: Router {
                runtime: Arc::downgrade(&runtime.inner),
            },
        }
    }

    /// The name of the module in its runtime.
    pub fn module(&self) -> &Arc<str> {
        &self.module.name
    }

    /// The services the module may use.
    pub fn grants(&self) -> &Grants {
        &self.module.grants
    }

    /// The way back to the runtime.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Serves the module's service import `import` with the request payload `payload`,
    /// for the call of `request_id` (0: a lifecycle hook) whose per-call budgets are
    /// `budget`; returns the response payload. Refused with `ErrorCode::DENIED` when
    /// the module was not granted the service (which `add` refuses already), with
    /// `ErrorCode::NOT_IN_RUNTIME` once the runtime is dropped; every other failure is
    /// the service's own error (`docs/runtime.md`, "Services").
    pub fn serve(
        &self,
        import: ServiceImport,
        request_id: u64,
        budget: &mut ServiceBudget,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostError> {
        let runtime = self.router.runtime()?;
        let inner = &*runtime.inner;
        let is_module = |name: &str| runtime.read().contains_key(name);
        let host = Host {
            module: &self.module.name,
            grants: &self.module.grants,
            request_id,
            services: &inner.services,
            bus: &inner.bus,
            config: &inner.config,
            is_module: &is_module,
        };
        serve::serve(&host, import, budget, payload)
    }

    /// The runtime's modules and their functions, sorted by name, for the guest; refused
    /// with `ErrorCode::DENIED` unless the module was granted discovery
    /// ([`Grants::discover`]).
    pub fn modules(&self) -> Result<Vec<(String, Vec<String>)>, HostError> {
        if !self.module.grants.allows(Grant::Discover) {
            return Err(HostError::new(
                ErrorCode::DENIED,
                format!(
                    "module `{}` was not granted `discover`: it may not list the runtime's modules",
                    self.module.name
                ),
            ));
        }
        let runtime = self.router.runtime()?;
        Ok(runtime
            .modules()
            .into_iter()
            .map(|m| (m.name, m.functions))
            .collect())
    }
}

impl fmt::Debug for RuntimeLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeLink")
            .field("module", &self.module.name)
            .field("grants", &self.module.grants)
            .finish_non_exhaustive()
    }
}

/// An instance's way back to its runtime, to serve calls its guest makes. Holds the
/// runtime weakly (instances do not keep their runtime alive): once the runtime is
/// dropped, every call fails with `ErrorCode::NOT_IN_RUNTIME`.
///
/// Every failure is a [`HostError`] for the guest, with a code that tells its kind
/// apart (`docs/runtime.md`, "Errors").
#[derive(Clone)]
pub struct Router {
    runtime: Weak<Inner>,
}

impl Router {
    fn runtime(&self) -> Result<Runtime, HostError> {
        match self.runtime.upgrade() {
            Some(inner) => Ok(Runtime { inner }),
            None => Err(HostError::new(
                ErrorCode::NOT_IN_RUNTIME,
                "the runtime this instance belonged to was dropped",
            )),
        }
    }

    /// Calls `function` of `module` for a guest, as `ctx` says (the caller, the
    /// request, the callee's depth and the chain's deadline), and returns a copy of the
    /// callee's output payload (verified while it is copied: one pass).
    ///
    /// The callee runs under its own limits but never past `ctx.deadline`; waiting for
    /// one of its instances counts against that deadline too, and fails at once when
    /// every instance is held by this very chain ([`ErrorKind::Reentry`]) or the chain
    /// is one of a cycle of chains waiting for one another ([`ErrorKind::Deadlock`]).
    /// A failure of
    /// the callee (its error envelope, a trap, a panic, a limit, an unknown module or
    /// function) comes back as a [`HostError`]: the callee's own code and message for
    /// its error envelope, a code of the runtime's otherwise ([`routed_error`]). A trap
    /// poisons only the callee's instance.
    pub fn call(
        &self,
        ctx: CallContext,
        module: &str,
        function: &str,
        input: &[u8],
    ) -> Result<Vec<u8>, HostError> {
        if function.starts_with(RESERVED_EXPORT_PREFIX) {
            // The module's own entries (its message handler, its hooks): never called by
            // another module.
            return Err(HostError::new(
                ErrorCode::UNKNOWN_FUNCTION,
                format!("call to {module}.{function} failed: `{function}` is reserved"),
            ));
        }
        let runtime = self.runtime()?;
        let mut ctx = ctx;
        if ctx.request_id == 0 {
            // Guest code that runs outside a call (a lifecycle hook) has no request: its
            // calls start one, as a call from the host would.
            ctx.request_id = runtime.next_request();
        }
        // A call from a module: its wait is recorded for the deadlock check, and
        // bounded by the chain's deadline.
        runtime
            .run(module, ctx, |instance, ctx| {
                instance.call_to_vec(ctx, function, input)
            })
            .map_err(|e| routed_error(module, function, &e))
    }

    /// Calls the host callable `id` for a guest and returns its output payload.
    /// An id that is not registered is `ErrorCode::UNKNOWN_CALLABLE`; the callable's own
    /// [`HostError`] reaches the guest as it is; a panicking callable is
    /// `ErrorCode::CALL_FAILED` (the panic is caught).
    pub fn call_callable(
        &self,
        ctx: &CallContext,
        id: u64,
        input: &[u8],
    ) -> Result<Vec<u8>, HostError> {
        let runtime = self.runtime()?;
        let callable = runtime.inner.callables.get(id).ok_or_else(|| {
            HostError::new(
                ErrorCode::UNKNOWN_CALLABLE,
                ErrorKind::UnknownCallable { id }.to_string(),
            )
        })?;
        // Called outside every lock: a callable may call the runtime, register or
        // unregister callables (itself too).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callable(ctx, input)))
            .unwrap_or_else(|panic| {
                Err(HostError::new(
                    ErrorCode::CALL_FAILED,
                    format!(
                        "host callable {id:#018x} panicked: {}",
                        panic_message(&*panic)
                    ),
                ))
            })
    }
}

/// How long a call may wait for an instance: `max_wait`, within the chain's deadline.
/// Fails with a timeout when the deadline has passed already.
pub(super) fn wait_within(
    max_wait: Duration,
    deadline: Option<Instant>,
) -> Result<Duration, Error> {
    let Some(deadline) = deadline else {
        return Ok(max_wait);
    };
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(max_wait.min(left)),
        _ => Err(ErrorKind::Trap(TrapKind::Timeout).into()),
    }
}

/// The error a guest gets for a call to `module.function` that failed with `e`: the
/// callee's own code and message when it answered with an error envelope; otherwise a
/// code of the runtime's that tells the kind of failure, and a message naming the
/// callee and what happened.
///
/// | failure | code |
/// |---|---|
/// | the callee's error envelope | the callee's code |
/// | no such module / function | `UNKNOWN_MODULE` / `UNKNOWN_FUNCTION` |
/// | a trap (not a limit) | `CALLEE_TRAPPED` |
/// | a panic | `CALLEE_PANICKED` |
/// | fuel, timeout (own or the chain's deadline), memory, call depth | `LIMIT_EXCEEDED` |
/// | every instance busy, held by this chain, or held in a deadlock | `BUSY` |
/// | anything else (an ABI violation, an instance that could not be made) | `CALL_FAILED` |
pub fn routed_error(module: &str, function: &str, e: &Error) -> HostError {
    let code = match e.kind() {
        ErrorKind::Guest { code, message } => return HostError::new(*code, message.clone()),
        ErrorKind::UnknownModule { .. } => ErrorCode::UNKNOWN_MODULE,
        ErrorKind::UnknownFunction { .. } => ErrorCode::UNKNOWN_FUNCTION,
        ErrorKind::UnknownCallable { .. } => ErrorCode::UNKNOWN_CALLABLE,
        ErrorKind::Trap(TrapKind::OutOfFuel | TrapKind::Timeout) | ErrorKind::Limit(_) => {
            ErrorCode::LIMIT_EXCEEDED
        }
        ErrorKind::Trap(_) => ErrorCode::CALLEE_TRAPPED,
        ErrorKind::Panic { .. } => ErrorCode::CALLEE_PANICKED,
        ErrorKind::Busy { .. } | ErrorKind::Reentry { .. } | ErrorKind::Deadlock { .. } => {
            ErrorCode::BUSY
        }
        _ => ErrorCode::CALL_FAILED,
    };
    HostError::new(code, format!("call to {module}.{function} failed: {e}"))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}

/// The id of a host callable ([`Runtime::register_callable`]): a `u64` drawn from the
/// operating system's random source, never issued twice by one runtime. Hand it to a
/// guest as data; a guest cannot list the ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallableId(u64);

impl CallableId {
    /// The id as the guest passes it (`membrane_guest::call_callable`).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CallableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

impl fmt::Debug for CallableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallableId({self})")
    }
}

/// A host callable after type erasure: the context of the call that invokes it, the
/// input payload; the output payload.
pub(crate) type CallableFn =
    dyn Fn(&CallContext, &[u8]) -> Result<Vec<u8>, HostError> + Send + Sync;

/// The callables of a runtime.
#[derive(Default)]
pub(crate) struct Callables {
    state: RwLock<CallableState>,
}

#[derive(Default)]
struct CallableState {
    live: HashMap<u64, Arc<CallableFn>>,
    /// Every id ever issued (live or unregistered): never issued again.
    issued: HashSet<u64>,
}

impl Callables {
    /// Registers `f` under a fresh random id.
    pub(crate) fn register(&self, f: Arc<CallableFn>) -> crate::error::Result<CallableId> {
        loop {
            let id = getrandom::u64().map_err(|e| {
                Error::host(format_args!(
                    "cannot draw a callable id from the OS random source: {e}"
                ))
            })?;
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            // 0 is never issued (a guest's zeroed memory is not an id); a repeat of an
            // id issued before (a 1 in 2^64 event per id) draws again.
            if id != 0 && state.issued.insert(id) {
                state.live.insert(id, f);
                return Ok(CallableId(id));
            }
        }
    }

    /// Unregisters `id`; whether it was registered.
    pub(crate) fn unregister(&self, id: CallableId) -> bool {
        let removed = self
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .remove(&id.0);
        // Dropped outside the lock (a closure's captures may take locks of their own).
        removed.is_some()
    }

    fn get(&self, id: u64) -> Option<Arc<CallableFn>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .get(&id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_errors_carry_distinct_codes() {
        let cases: Vec<(ErrorKind, ErrorCode)> = vec![
            (
                ErrorKind::Guest {
                    code: ErrorCode(1234),
                    message: "mine".into(),
                },
                ErrorCode(1234),
            ),
            (
                ErrorKind::UnknownModule { name: "m".into() },
                ErrorCode::UNKNOWN_MODULE,
            ),
            (
                ErrorKind::UnknownFunction { name: "f".into() },
                ErrorCode::UNKNOWN_FUNCTION,
            ),
            (
                ErrorKind::UnknownCallable { id: 7 },
                ErrorCode::UNKNOWN_CALLABLE,
            ),
            (
                ErrorKind::Trap(TrapKind::Unreachable),
                ErrorCode::CALLEE_TRAPPED,
            ),
            (
                ErrorKind::Panic {
                    message: "p".into(),
                },
                ErrorCode::CALLEE_PANICKED,
            ),
            (
                ErrorKind::Trap(TrapKind::OutOfFuel),
                ErrorCode::LIMIT_EXCEEDED,
            ),
            (
                ErrorKind::Trap(TrapKind::Timeout),
                ErrorCode::LIMIT_EXCEEDED,
            ),
            (
                ErrorKind::Limit(crate::LimitKind::CallDepth { limit: 3 }),
                ErrorCode::LIMIT_EXCEEDED,
            ),
            (
                ErrorKind::Busy {
                    module: "m".into(),
                    instances: 1,
                    waited: Duration::ZERO,
                },
                ErrorCode::BUSY,
            ),
            (ErrorKind::Reentry { module: "m".into() }, ErrorCode::BUSY),
            (
                ErrorKind::Deadlock {
                    module: "m".into(),
                    instances: 1,
                    chains: 2,
                },
                ErrorCode::BUSY,
            ),
            (
                ErrorKind::Host {
                    message: "x".into(),
                },
                ErrorCode::CALL_FAILED,
            ),
        ];
        for (kind, code) in cases {
            let e = routed_error("m", "f", &kind.into());
            assert_eq!(e.code, code, "{}", e.message);
            if !matches!(code, ErrorCode(1234)) {
                assert!(
                    e.message.starts_with("call to m.f failed: "),
                    "{}",
                    e.message
                );
            } else {
                assert_eq!(e.message, "mine");
            }
        }
    }

    #[test]
    fn a_passed_deadline_is_a_timeout_and_a_near_one_bounds_the_wait() {
        let e = wait_within(Duration::from_secs(5), Some(Instant::now())).unwrap_err();
        assert!(e.is_trap(&TrapKind::Timeout), "{e}");
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(
            wait_within(Duration::from_secs(5), Some(soon)).unwrap() <= Duration::from_millis(50)
        );
        assert_eq!(
            wait_within(Duration::from_secs(5), None).unwrap(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn callable_ids_are_random_nonzero_and_never_reissued() {
        let callables = Callables::default();
        let f: Arc<CallableFn> = Arc::new(|_, input| Ok(input.to_vec()));
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let id = callables.register(f.clone()).unwrap();
            assert_ne!(id.get(), 0);
            assert!(seen.insert(id), "{id} issued twice");
            assert!(callables.unregister(id));
            assert!(!callables.unregister(id));
            assert!(callables.get(id.get()).is_none());
        }
        // Not a counter: consecutive ids differ in many bits.
        let ids: Vec<u64> = seen.iter().map(|id| id.get()).collect();
        assert!(ids.windows(2).any(|w| (w[0] ^ w[1]).count_ones() > 8));
    }
}
