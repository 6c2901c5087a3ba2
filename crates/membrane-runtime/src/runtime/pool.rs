//! The instances of one version of a module: a bounded pool that lends an instance to
//! one call at a time, makes instances on demand, drops poisoned ones, and makes a
//! call wait (bounded) when every instance is busy.
//!
//! The locking rule of the runtime lives here: the pool's mutex is held only to take an
//! idle instance, count one in or out, or put one back; never while guest code runs
//! (calls, instantiations, whose start function is guest code, and lifecycle hooks run
//! on an instance the call owns alone, outside every lock) and never while an instance
//! is dropped.
//!
//! A call from a module that has to wait records its wait in the runtime's
//! [`WaitGraph`] and checks, when it starts waiting and then every [`CHECK_EVERY`],
//! whether it is one of a knot of chains that wait on one another (`deadlock.rs`); a
//! call that finds an instance or room for one never touches the graph, nor does a
//! call from the host (it holds no instance, so it is never one of a knot).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::deadlock::{Resource, WaitGraph, Waiting};
use crate::error::{ErrorKind, Result};
use crate::executor::{GuestInstance, Instantiator};

/// How often a waiting call checks again whether it is deadlocked. It checks first when
/// it starts waiting, which finds a knot as it forms (the chain that completes a knot
/// is the last of its members to wait, and checks after every other member's wait is
/// recorded); checking again is a safeguard, bounding how long a knot that check did
/// not report would go unnoticed.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(20);

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
    ///
    /// With `waits`, the call's wait is recorded there while it waits, and a call that
    /// is one of a knot of chains waiting on one another fails with
    /// [`ErrorKind::Deadlock`]. Without (a call from the host, whose chain holds no
    /// instance and so is never one of a knot), it only waits.
    #[inline]
    pub(crate) fn acquire<'p>(
        self: &'p Arc<Pool>,
        make: &dyn Instantiator,
        max_wait: Duration,
        module: &str,
        request: u64,
        waits: Option<&WaitGraph>,
    ) -> Result<Lease<'p>> {
        let mut state = self.lock();
        if let Some(instance) = state.idle.pop() {
            state.holders.push(request);
            return Ok(self.lease(instance, request));
        }
        if state.live < self.max {
            return self.make_for(state, make, request);
        }
        self.wait(state, make, max_wait, module, request, waits)
    }

    fn lease(&self, instance: Box<dyn GuestInstance>, request: u64) -> Lease<'_> {
        Lease {
            pool: self,
            instance: Some(instance),
            request,
        }
    }

    /// Makes an instance for `request` in the room `state` has (`live < max`).
    fn make_for<'p>(
        &'p self,
        mut state: MutexGuard<'_, PoolState>,
        make: &dyn Instantiator,
        request: u64,
    ) -> Result<Lease<'p>> {
        state.live += 1;
        state.holders.push(request);
        drop(state);
        match make.instantiate() {
            Ok(instance) => Ok(self.lease(instance, request)),
            Err(e) => {
                let mut state = self.lock();
                state.release(request);
                state.live = state.live.saturating_sub(1);
                self.wake_one(state);
                Err(e)
            }
        }
    }

    /// The wait path of [`Pool::acquire`]: every instance is lent and none may be made.
    #[cold]
    #[inline(never)]
    fn wait<'p>(
        self: &'p Arc<Pool>,
        mut state: MutexGuard<'p, PoolState>,
        make: &dyn Instantiator,
        max_wait: Duration,
        module: &str,
        request: u64,
        waits: Option<&WaitGraph>,
    ) -> Result<Lease<'p>> {
        if state.holders.iter().filter(|&&h| h == request).count() >= self.max {
            return Err(ErrorKind::Reentry {
                module: module.to_string(),
            }
            .into());
        }
        let started = Instant::now();
        // Declared after `state`, so dropped before it: a wait that ends with an
        // instance ends under the pool's lock (`deadlock.rs`).
        let mut waiting: Option<Waiting<'_>> = None;
        // When the next deadlock check is due (the first: at once), if any.
        let mut check_at = waits.map(|_| started);
        loop {
            if let Some(instance) = state.idle.pop() {
                state.holders.push(request);
                drop(waiting);
                return Ok(self.lease(instance, request));
            }
            if state.live < self.max {
                drop(waiting);
                return self.make_for(state, make, request);
            }
            let now = Instant::now();
            let waited = now.saturating_duration_since(started);
            let Some(left) = max_wait.checked_sub(waited).filter(|d| !d.is_zero()) else {
                drop(waiting);
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
            if let Some(waits) = waits
                && check_at.is_some_and(|at| now >= at)
            {
                let waiting = waiting.get_or_insert_with(|| {
                    let on: Weak<Pool> = Arc::downgrade(self);
                    waits.enter(request, on)
                });
                // The check reads pools (this one too) one at a time.
                drop(state);
                if let Some(chains) = waiting.knot() {
                    return Err(ErrorKind::Deadlock {
                        module: module.to_string(),
                        instances: self.max,
                        chains,
                    }
                    .into());
                }
                check_at = Some(Instant::now() + CHECK_EVERY);
                state = self.lock();
                // Freed meanwhile? (Nobody notified this call while it checked.)
                continue;
            }
            state.waiting += 1;
            state = self
                .freed
                .wait_timeout(state, check_at.map_or(left, |at| left.min(at - now)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        }
    }
}

impl Resource for Pool {
    fn exhausted(&self, holders: &mut Vec<u64>) -> bool {
        let state = self.lock();
        if !state.idle.is_empty() || state.live < self.max {
            return false;
        }
        holders.extend_from_slice(&state.holders);
        true
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
    /// when it goes (no instance is lent then: each lease borrows the pool's version).
    /// The pool itself may outlive its version for a moment (a deadlock check of
    /// another call may hold it), empty.
    pub(crate) fn take_idle(&self) -> Vec<Box<dyn GuestInstance>> {
        let mut state = self.lock();
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
    use std::sync::Barrier;
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

    /// Pools of fake instances sharing one wait graph, as a runtime's pools do.
    struct Pools {
        pools: Vec<Arc<Pool>>,
        maker: Maker,
        waits: WaitGraph,
    }

    impl Pools {
        /// One pool per entry of `sizes`, called `p0`, `p1`, ...
        fn new(sizes: &[usize]) -> Pools {
            Pools {
                pools: sizes.iter().map(|&max| Arc::new(Pool::new(max))).collect(),
                maker: Maker::default(),
                waits: WaitGraph::default(),
            }
        }

        /// An instance of pool `i` for `request`, waiting at most `wait`.
        fn get(&self, i: usize, wait: Duration, request: u64) -> Result<Lease<'_>> {
            self.pools[i].acquire(
                &self.maker,
                wait,
                &format!("p{i}"),
                request,
                Some(&self.waits),
            )
        }
    }

    /// Calls `name` on the lent instance.
    fn call(lease: &mut Lease<'_>, name: &str) -> Result<()> {
        lease
            .instance()?
            .call_envelope(crate::CallContext::host(1), name, b"", &mut |_| ())
    }

    /// Far longer than any test may take: a wait that ends ended for another reason.
    const FOREVER: Duration = Duration::from_secs(60);

    /// Instances are reused; a poisoned one is dropped and the next call gets a new one.
    #[test]
    fn reuses_instances_and_replaces_poisoned_ones() {
        let pools = Pools::new(&[1]);
        for _ in 0..3 {
            let mut lease = pools.get(0, Duration::ZERO, 1).unwrap();
            call(&mut lease, "f").unwrap();
        }
        assert_eq!(pools.maker.made.load(Ordering::SeqCst), 1);
        let mut lease = pools.get(0, Duration::ZERO, 1).unwrap();
        assert!(call(&mut lease, "trap").is_err());
        drop(lease);
        assert_eq!(pools.pools[0].live(), 0);
        let mut lease = pools.get(0, Duration::ZERO, 1).unwrap();
        call(&mut lease, "f").unwrap();
        assert_eq!(pools.maker.made.load(Ordering::SeqCst), 2);
    }

    /// A full pool makes a call wait, then fail with `Busy`; a freed instance is handed
    /// to a waiting call. Neither leaves a wait in the graph.
    #[test]
    fn a_full_pool_waits_then_is_busy() {
        let pools = Pools::new(&[1]);
        let lease = pools.get(0, Duration::ZERO, 1).unwrap();
        let e = pools.get(0, Duration::from_millis(50), 2).err().unwrap();
        match e.kind() {
            ErrorKind::Busy {
                module,
                instances,
                waited,
            } => {
                assert_eq!((module.as_str(), *instances), ("p0", 1));
                assert!(*waited >= Duration::from_millis(50), "{waited:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pools.waits.waiting(), 0);
        // The same without a wait graph (a call from the host).
        let e = pools.pools[0]
            .acquire(&pools.maker, Duration::from_millis(50), "p0", 2, None)
            .err()
            .unwrap();
        assert!(matches!(e.kind(), ErrorKind::Busy { .. }), "{e}");
        // A waiter with a long bound is served as soon as the lease is dropped.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pools.get(0, FOREVER, 3).map(|_| ()));
            std::thread::sleep(Duration::from_millis(10));
            drop(lease);
            waiter.join().unwrap().unwrap();
        });
        assert_eq!(pools.maker.made.load(Ordering::SeqCst), 1);
        assert_eq!(pools.waits.waiting(), 0);
    }

    /// A request that holds every instance does not wait for itself; another request
    /// holding one of them is waited for; a freed lease is no longer the request's.
    #[test]
    fn a_request_never_waits_for_itself() {
        let pools = Pools::new(&[2]);
        let first = pools.get(0, Duration::ZERO, 7).unwrap();
        let second = pools.get(0, Duration::ZERO, 7).unwrap();
        let e = pools.get(0, FOREVER, 7).err().unwrap();
        assert!(
            matches!(e.kind(), ErrorKind::Reentry { module } if module == "p0"),
            "{e}"
        );
        drop(second);
        let other = pools.get(0, Duration::ZERO, 8).unwrap();
        // One instance is request 8's, which runs: request 7 has to wait (and is Busy,
        // not deadlocked).
        let e = pools.get(0, Duration::from_millis(30), 7).err().unwrap();
        assert!(matches!(e.kind(), ErrorKind::Busy { .. }), "{e}");
        drop((first, other));
        assert_eq!(pools.pools[0].lock().holders, Vec::<u64>::new());
    }

    /// A failed instantiation frees its place in the pool.
    #[test]
    fn a_failed_instantiation_frees_its_place() {
        let pool = Arc::new(Pool::new(1));
        let maker = Maker {
            fail: true,
            ..Maker::default()
        };
        for _ in 0..2 {
            assert!(pool.acquire(&maker, Duration::ZERO, "m", 1, None).is_err());
            assert_eq!(pool.live(), 0);
        }
    }

    /// How a chain of the deadlock tests ended: `Ok`, or the deadlock error's module
    /// and chain count.
    type Outcome = std::result::Result<(), (String, usize)>;

    /// Runs one thread per chain: request `i + 1` takes an instance of each pool in
    /// `chains[i].0`, meets the others, then asks for one of pool `chains[i].1`
    /// (waiting up to a minute), and lets everything go. Returns each chain's outcome
    /// and how long the longest took. Any error but a deadlock fails the test.
    fn run_chains(pools: &Pools, chains: &[(&[usize], usize)]) -> (Vec<Outcome>, Duration) {
        let met = Barrier::new(chains.len());
        let started = Instant::now();
        let outcomes = std::thread::scope(|s| {
            let threads: Vec<_> = chains
                .iter()
                .enumerate()
                .map(|(i, &(held, wanted))| {
                    let met = &met;
                    s.spawn(move || {
                        let request = i as u64 + 1;
                        let held: Vec<_> = held
                            .iter()
                            .map(|&p| pools.get(p, Duration::ZERO, request).unwrap())
                            .collect();
                        met.wait();
                        let outcome = match pools.get(wanted, FOREVER, request) {
                            Ok(_) => Ok(()),
                            Err(e) => match e.kind() {
                                ErrorKind::Deadlock {
                                    module,
                                    instances,
                                    chains,
                                } => {
                                    assert_eq!(*instances, pools.pools[wanted].max);
                                    assert!(e.to_string().starts_with("deadlock: "), "{e}");
                                    Err((module.clone(), *chains))
                                }
                                other => panic!("chain {request}: {other:?}"),
                            },
                        };
                        drop(held);
                        outcome
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(pools.waits.waiting(), 0);
        (outcomes, started.elapsed())
    }

    /// The deadlocks among `outcomes`.
    fn deadlocks(outcomes: &[Outcome]) -> Vec<(String, usize)> {
        outcomes.iter().filter_map(|o| o.clone().err()).collect()
    }

    /// Two chains crossing between two pools of one instance, each holding the one the
    /// other waits for: exactly one fails with `Deadlock` (the other one's check finds
    /// that wait ended), at once, and the other is served; a third chain waiting on one
    /// of the pools, holding nothing, is served too.
    #[test]
    fn crossing_chains_fail_one_of_them_at_once() {
        for _ in 0..20 {
            let pools = Pools::new(&[1, 1]);
            let (outcomes, took) = run_chains(&pools, &[(&[0], 1), (&[1], 0), (&[], 0)]);
            let found = deadlocks(&outcomes);
            assert_eq!(found.len(), 1, "{outcomes:?}");
            assert_eq!(found[0].1, 2, "{outcomes:?}");
            assert!(outcomes[2].is_ok(), "{outcomes:?}");
            // "At once": the check that finds it runs when the second chain starts to
            // wait; leave room for a loaded machine, far below the minute of `FOREVER`.
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
    }

    /// A cycle of three chains over three pools: one fails, naming the pool it waited
    /// for and a cycle of 3.
    #[test]
    fn a_cycle_of_three_fails_one_of_them() {
        for _ in 0..20 {
            let pools = Pools::new(&[1, 1, 1]);
            let (outcomes, took) = run_chains(&pools, &[(&[0], 1), (&[1], 2), (&[2], 0)]);
            let found = deadlocks(&outcomes);
            assert_eq!(found.len(), 1, "{outcomes:?}");
            let (module, chains) = &found[0];
            let victim = outcomes.iter().position(Result::is_err).unwrap();
            assert_eq!(*module, format!("p{}", (victim + 1) % 3));
            assert_eq!(*chains, 3);
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
    }

    /// Example (2) of `docs/runtime.md`: four chains, each holding one of the four
    /// instances of `p0` (and one of `p1`), each wanting a second `p0`. No cycle of two
    /// instances of one-instance pools, but a knot all the same: one fails, the other
    /// three are served in turn.
    #[test]
    fn a_full_pool_held_by_chains_that_each_want_one_more_is_a_knot() {
        for _ in 0..20 {
            let pools = Pools::new(&[4, 4]);
            let chain: (&[usize], usize) = (&[0, 1], 0);
            let (outcomes, took) = run_chains(&pools, &[chain; 4]);
            assert_eq!(
                deadlocks(&outcomes),
                [("p0".to_string(), 4)],
                "{outcomes:?}"
            );
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
    }

    /// Contended, not deadlocked: chain 1 holds `p0` and waits for `p1`, held by chain
    /// 2, which waits for `p2`, held by chain 3, which runs (it is not waiting) and lets
    /// go after a while; chain 4 waits for `p0` holding nothing. Everyone waits through
    /// many checks, none is reported, and all are served.
    #[test]
    fn waits_behind_a_running_chain_are_no_deadlock() {
        let pools = Pools::new(&[1, 1, 1]);
        let hold = 10 * CHECK_EVERY;
        let met = Barrier::new(3);
        let started = Instant::now();
        std::thread::scope(|s| {
            let runs = s.spawn(|| {
                let lease = pools.get(2, Duration::ZERO, 3).unwrap();
                std::thread::sleep(hold);
                drop(lease);
            });
            std::thread::sleep(Duration::from_millis(20));
            let waiters: Vec<_> = [(1, Some(0), 1), (2, Some(1), 2), (4, None, 0)]
                .into_iter()
                .map(|(request, held, wanted)| {
                    let (pools, met) = (&pools, &met);
                    s.spawn(move || {
                        let held = held.map(|p| pools.get(p, Duration::ZERO, request).unwrap());
                        met.wait();
                        let got = pools.get(wanted, FOREVER, request).map(|_| ());
                        drop(held);
                        got
                    })
                })
                .collect();
            runs.join().unwrap();
            for waiter in waiters {
                waiter.join().unwrap().unwrap();
            }
        });
        assert!(started.elapsed() >= hold);
        assert_eq!(pools.waits.waiting(), 0);
    }
}
