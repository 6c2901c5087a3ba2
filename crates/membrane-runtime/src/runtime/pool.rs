//! The instances of one version of a module: a bounded pool that lends an instance to
//! one call at a time, makes instances on demand, drops poisoned ones, and makes a
//! call wait (bounded) when every instance is busy.
//!
//! The locking rule of the runtime lives here: the pool's mutex is held only to take an
//! idle instance, count one in or out, or put one back; never while guest code runs
//! (calls, instantiations, whose start function is guest code, and lifecycle hooks run
//! on an instance the call owns alone, outside every lock) and never while an instance
//! is dropped.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, Result};
use crate::executor::{GuestInstance, Instantiator};

/// The instances of a module version that keeps them (`Persistent`, `Pooled`).
pub(crate) struct Pool {
    /// The most instances that may exist at once.
    max: usize,
    state: Mutex<PoolState>,
    /// Signalled when an instance is put back or one fewer exists.
    freed: Condvar,
}

struct PoolState {
    /// Instances not lent to a call.
    idle: Vec<Box<dyn GuestInstance>>,
    /// Instances that exist or are being made: idle, lent, or instantiating.
    live: usize,
    /// Calls waiting on `freed`. Nobody is notified when it is 0: a notification is a
    /// system call even with no waiter, several times the cost of the rest of a lease.
    waiting: usize,
    /// The request of each lent instance (one entry per lease): a call whose own
    /// request holds every instance fails at once instead of waiting for itself.
    holders: Vec<u64>,
}

impl Pool {
    /// An empty pool of up to `max` instances.
    pub(crate) fn new(max: usize) -> Pool {
        Pool {
            max,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                live: 0,
                waiting: 0,
                holders: Vec::new(),
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Nothing that can panic runs under the lock; if something did, the state is
        // still consistent (a push, a pop, a counter).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an instance made beforehand (the one `add` and `replace` make to check that
    /// the module instantiates), if there is room.
    pub(crate) fn put(&self, instance: Box<dyn GuestInstance>) {
        let mut state = self.lock();
        if state.live < self.max {
            state.live += 1;
            state.idle.push(instance);
            self.wake_one(state);
        }
    }

    /// Releases the lock and wakes one waiting call, if any waits.
    fn wake_one(&self, state: MutexGuard<'_, PoolState>) {
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.freed.notify_one();
        }
    }

    /// Lends an instance for one call of the request `request`: an idle one, else a
    /// new one while fewer than `max` exist, else waits up to `max_wait` for one to be
    /// freed and fails with [`ErrorKind::Busy`] after it. When every instance is lent
    /// to `request` itself (a module calling back into one that called it), fails at
    /// once with [`ErrorKind::Reentry`]: none would be freed before this call ends.
    pub(crate) fn acquire<'p>(
        &'p self,
        make: &dyn Instantiator,
        max_wait: Duration,
        module: &str,
        request: u64,
    ) -> Result<Lease<'p>> {
        let mut state = self.lock();
        // Read the clock only when a call has to wait.
        let mut started: Option<Instant> = None;
        loop {
            if let Some(instance) = state.idle.pop() {
                state.holders.push(request);
                return Ok(Lease {
                    pool: self,
                    instance: Some(instance),
                    request,
                });
            }
            if state.live < self.max {
                state.live += 1;
                state.holders.push(request);
                drop(state);
                return match make.instantiate() {
                    Ok(instance) => Ok(Lease {
                        pool: self,
                        instance: Some(instance),
                        request,
                    }),
                    Err(e) => {
                        let mut state = self.lock();
                        state.release(request);
                        state.live = state.live.saturating_sub(1);
                        self.wake_one(state);
                        Err(e)
                    }
                };
            }
            if state.holders.iter().filter(|&&h| h == request).count() >= self.max {
                return Err(ErrorKind::Reentry {
                    module: module.to_string(),
                }
                .into());
            }
            let now = Instant::now();
            let started = *started.get_or_insert(now);
            let waited = now.saturating_duration_since(started);
            let Some(left) = max_wait.checked_sub(waited).filter(|d| !d.is_zero()) else {
                // A notification this call may have taken as it timed out goes on to
                // the next waiter.
                self.wake_one(state);
                return Err(ErrorKind::Busy {
                    module: module.to_string(),
                    instances: self.max,
                    waited,
                }
                .into());
            };
            state.waiting += 1;
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        }
    }
}

impl PoolState {
    /// Forgets one lease of `request`.
    #[inline]
    fn release(&mut self, request: u64) {
        if let Some(at) = self.holders.iter().rposition(|&h| h == request) {
            self.holders.swap_remove(at);
        }
    }
}

impl Pool {
    /// Takes every idle instance out: for the version that owns the pool to stop them
    /// when it goes (no instance is lent then: each lease borrows the pool). Takes no
    /// lock (`&mut self`).
    pub(crate) fn take_idle(&mut self) -> Vec<Box<dyn GuestInstance>> {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        state.live = state.live.saturating_sub(state.idle.len());
        std::mem::take(&mut state.idle)
    }

    /// How many instances exist (idle or lent).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.lock().live
    }
}

/// An instance lent to one call. Dropping it puts the instance back into its pool, or,
/// if it is poisoned (or the call panicked), drops it, without its stop hook, so that
/// the next call gets a fresh one.
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    instance: Option<Box<dyn GuestInstance>>,
    /// The request the instance is lent to.
    request: u64,
}

impl Lease<'_> {
    /// The lent instance.
    pub(crate) fn instance(&mut self) -> Result<&mut dyn GuestInstance> {
        match &mut self.instance {
            Some(instance) => Ok(&mut **instance),
            // `instance` is `None` only inside `drop`.
            None => Err(crate::error::Error::host("a lease without its instance")),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(instance) = self.instance.take() else {
            return;
        };
        if instance.is_poisoned() || std::thread::panicking() {
            // Dropped outside the lock.
            drop(instance);
            let mut state = self.pool.lock();
            state.release(self.request);
            state.live = state.live.saturating_sub(1);
            self.pool.wake_one(state);
        } else {
            let mut state = self.pool.lock();
            state.release(self.request);
            state.idle.push(instance);
            self.pool.wake_one(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::executor::Canceller;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An instance that poisons itself when asked to call `trap`.
    struct Fake {
        poisoned: bool,
    }

    impl GuestInstance for Fake {
        fn call_envelope(
            &mut self,
            _ctx: crate::CallContext,
            name: &str,
            input: &[u8],
            read: &mut dyn FnMut(&[u8]),
        ) -> Result<()> {
            if name == "trap" {
                self.poisoned = true;
                return Err(ErrorKind::Trap(crate::TrapKind::Unreachable).into());
            }
            read(input);
            Ok(())
        }

        fn run_hook(&mut self, _hook: crate::executor::Hook) -> Result<()> {
            Ok(())
        }

        fn canceller(&self) -> Box<dyn Canceller> {
            struct Nothing;
            impl Canceller for Nothing {
                fn cancel(&self) {}
            }
            Box::new(Nothing)
        }

        fn is_poisoned(&self) -> bool {
            self.poisoned
        }
    }

    #[derive(Default)]
    struct Maker {
        made: AtomicUsize,
        fail: bool,
    }

    impl Instantiator for Maker {
        fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
            if self.fail {
                return Err(Error::host("cannot"));
            }
            self.made.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Fake { poisoned: false }))
        }
    }

    /// Calls `name` on the lent instance.
    fn call(lease: &mut Lease<'_>, name: &str) -> Result<()> {
        lease
            .instance()?
            .call_envelope(crate::CallContext::host(1), name, b"", &mut |_| ())
    }

    /// Instances are reused; a poisoned one is dropped and the next call gets a new one.
    #[test]
    fn reuses_instances_and_replaces_poisoned_ones() {
        let pool = Pool::new(1);
        let maker = Maker::default();
        for _ in 0..3 {
            let mut lease = pool.acquire(&maker, Duration::ZERO, "m", 1).unwrap();
            call(&mut lease, "f").unwrap();
        }
        assert_eq!(maker.made.load(Ordering::SeqCst), 1);
        let mut lease = pool.acquire(&maker, Duration::ZERO, "m", 1).unwrap();
        assert!(call(&mut lease, "trap").is_err());
        drop(lease);
        assert_eq!(pool.live(), 0);
        let mut lease = pool.acquire(&maker, Duration::ZERO, "m", 1).unwrap();
        call(&mut lease, "f").unwrap();
        assert_eq!(maker.made.load(Ordering::SeqCst), 2);
    }

    /// A full pool makes a call wait, then fail with `Busy`; a freed instance is handed
    /// to a waiting call.
    #[test]
    fn a_full_pool_waits_then_is_busy() {
        let pool = Arc::new(Pool::new(1));
        let maker = Arc::new(Maker::default());
        let lease = pool.acquire(&*maker, Duration::ZERO, "m", 1).unwrap();
        let e = pool
            .acquire(&*maker, Duration::from_millis(20), "m", 2)
            .err()
            .unwrap();
        match e.kind() {
            ErrorKind::Busy {
                module,
                instances,
                waited,
            } => {
                assert_eq!((module.as_str(), *instances), ("m", 1));
                assert!(*waited >= Duration::from_millis(20), "{waited:?}");
            }
            other => panic!("{other:?}"),
        }
        // A waiter with a long bound is served as soon as the lease is dropped.
        let waiter = {
            let (pool, maker) = (pool.clone(), maker.clone());
            std::thread::spawn(move || {
                pool.acquire(&*maker, Duration::from_secs(60), "m", 3)
                    .map(|_| ())
            })
        };
        std::thread::sleep(Duration::from_millis(10));
        drop(lease);
        waiter.join().unwrap().unwrap();
        assert_eq!(maker.made.load(Ordering::SeqCst), 1);
    }

    /// A request that holds every instance does not wait for itself; another request
    /// holding one of them is waited for; a freed lease is no longer the request's.
    #[test]
    fn a_request_never_waits_for_itself() {
        let pool = Pool::new(2);
        let maker = Maker::default();
        let first = pool.acquire(&maker, Duration::ZERO, "m", 7).unwrap();
        let second = pool.acquire(&maker, Duration::ZERO, "m", 7).unwrap();
        let e = pool
            .acquire(&maker, Duration::from_secs(60), "m", 7)
            .err()
            .unwrap();
        assert!(
            matches!(e.kind(), ErrorKind::Reentry { module } if module == "m"),
            "{e}"
        );
        drop(second);
        let other = pool.acquire(&maker, Duration::ZERO, "m", 8).unwrap();
        // One instance is request 8's: request 7 would have to wait (and is Busy).
        let e = pool
            .acquire(&maker, Duration::from_millis(1), "m", 7)
            .err()
            .unwrap();
        assert!(matches!(e.kind(), ErrorKind::Busy { .. }), "{e}");
        drop((first, other));
        assert_eq!(pool.lock().holders, Vec::<u64>::new());
    }

    /// A failed instantiation frees its place in the pool.
    #[test]
    fn a_failed_instantiation_frees_its_place() {
        let pool = Pool::new(1);
        let maker = Maker {
            fail: true,
            ..Maker::default()
        };
        for _ in 0..2 {
            assert!(pool.acquire(&maker, Duration::ZERO, "m", 1).is_err());
            assert_eq!(pool.live(), 0);
        }
    }
}
