//! Deadlock detection for calls that wait for an instance: the runtime-wide record of
//! which call chain waits on which pool ([`WaitGraph`]), and the check a waiting call
//! runs over it ([`Waiting::knot`]) to learn whether it is one of a knot of chains that
//! wait on one another and would never be served (`docs/runtime.md`, "The locking
//! rule").
//!
//! Only the wait path comes here: a call that finds an idle instance, or may make one,
//! never does. The graph's mutex is the innermost lock of the runtime: it may be taken
//! while one pool's mutex is held, and nothing is locked while it is held; the check
//! reads the pools one at a time, holding no other lock.
//!
//! # The wait-for graph and its knots
//!
//! A chain (a request: a call from the host and every call it leads to, nested on one
//! thread) that waits on a pool is released when any lease of that pool ends, and a
//! lease ends only when the chain holding it goes on. So a waiting chain `w` has an edge
//! to every holder of the pool it waits on, and `w` can never be served when everything
//! it reaches is waiting too and no instance of those pools is free or may be made. A
//! *knot* is such a set in which every member also reaches `w` back: each member holds
//! an instance that another member waits for. Failing one member of a knot ends it (its
//! chain unwinds and frees what it holds); a chain that merely waits behind a knot
//! (holding nothing the knot waits for) is not a member and keeps waiting, to be served
//! once the knot is broken.
//!
//! # Why a reported knot is real
//!
//! The check reads the graph and the pools one at a time, so what it sees is never one
//! instant. Each wait has an id, unique within the graph, from its start (`enter`) to
//! its end (`leave`), and a chain ends its wait under the lock of the pool it waited on,
//! in the same critical section in which it takes an instance there. The check works in
//! three steps:
//!
//! 1. It walks the graph from the waiting chain: the wait (id and pool) of each chain it
//!    reaches, then the pool's holders; any chain that is not waiting, or a pool with an
//!    instance free or room for one, ends the check (the common case, after one pool).
//! 2. It reads every pool of the chains found again, after every wait was read, and
//!    walks them again from what it reads now, against the waits of step 1.
//! 3. Under the graph's lock, it checks that every member still waits with the same id,
//!    and, if so, ends the wait of the chain that checks (it fails with
//!    `ErrorKind::Deadlock`).
//!
//! Every member waited, with one id, from before step 2 to step 3. A waiting chain
//! releases nothing (its leases belong to the calls above it, on its own thread), so no
//! pool read in step 2 lost a holder, freed an instance or let anyone in before step 3:
//! at step 3 the knot exists as read. Since the checking chain removes its own wait in
//! step 3, the member whose check passes first is the only one that fails; the checks
//! of the others find that wait gone.
//!
//! The argument assumes what the runtime does: a request's calls are nested on one
//! thread, so a chain that waits runs nothing else. An embedder that routes calls of
//! one request from several threads at once (`Router::call` with a copied context) can
//! break it; a request seen waiting twice at once is never taken for blocked, but a
//! request waiting on one thread while running on another is (as it is by the
//! re-entry check: `ErrorKind::Reentry`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};

/// Something call chains wait for and hold: a pool of instances.
pub(crate) trait Resource: Send + Sync {
    /// Whether a waiter could be served now (an instance is idle, or one more may be
    /// made): `false`. Otherwise appends the request of every lease (one entry per
    /// lease) to `holders` and returns `true`.
    fn exhausted(&self, holders: &mut Vec<u64>) -> bool;
}

/// Which chain waits on which resource: one per runtime, shared by its pools.
#[derive(Default)]
pub(crate) struct WaitGraph {
    state: Mutex<Waits>,
}

#[derive(Default)]
struct Waits {
    /// The id of the last wait that started.
    last: u64,
    /// The waits of each request: one, as the runtime makes calls (more only if an
    /// embedder routes calls of one request from several threads at once).
    by_request: HashMap<u64, Vec<Wait>>,
}

#[derive(Clone)]
struct Wait {
    id: u64,
    on: Weak<dyn Resource>,
}

impl Waits {
    /// The wait of `request`, if it waits exactly once.
    fn only(&self, request: u64) -> Option<&Wait> {
        match self.by_request.get(&request).map(Vec::as_slice) {
            Some([wait]) => Some(wait),
            _ => None,
        }
    }

    /// Ends the wait `id` of `request`, if it has not ended.
    fn leave(&mut self, request: u64, id: u64) {
        if let Some(waits) = self.by_request.get_mut(&request) {
            waits.retain(|w| w.id != id);
            if waits.is_empty() {
                self.by_request.remove(&request);
            }
        }
    }
}

impl WaitGraph {
    fn lock(&self) -> MutexGuard<'_, Waits> {
        // Nothing that can panic runs under the lock but a `HashMap` insertion (out of
        // memory aborts); the map is consistent after any of its operations.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `request` waits on `on` until the returned [`Waiting`] is dropped
    /// (or its check finds a knot).
    pub(crate) fn enter(&self, request: u64, on: Weak<dyn Resource>) -> Waiting<'_> {
        Waiting {
            graph: self,
            request,
            id: self.start(request, on),
            ended: false,
        }
    }

    /// Records a wait of `request` on `on`; returns its id.
    fn start(&self, request: u64, on: Weak<dyn Resource>) -> u64 {
        let mut waits = self.lock();
        waits.last += 1;
        let id = waits.last;
        waits
            .by_request
            .entry(request)
            .or_default()
            .push(Wait { id, on });
        id
    }

    /// How many chains wait now (for tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.lock().by_request.values().map(Vec::len).sum()
    }
}

/// One wait of a chain, recorded in its [`WaitGraph`] until dropped. Drop it under the
/// lock of the pool it waits on when the chain takes an instance there (see the module
/// documentation: that is what makes a reported knot real).
pub(crate) struct Waiting<'g> {
    graph: &'g WaitGraph,
    request: u64,
    id: u64,
    /// The check found a knot and ended the wait.
    ended: bool,
}

/// What one walk of the graph found: the chains reached from the checking one, each
/// with its wait id and the holders of the pool it waits on.
struct Reach {
    /// The chains in the order they were reached (the checking one first).
    chains: Vec<u64>,
    waits: HashMap<u64, Wait>,
    holders: HashMap<u64, Vec<u64>>,
}

impl Waiting<'_> {
    /// Whether this chain is a member of a knot of waiting chains (see the module
    /// documentation). If it is, ends its wait (so that no other member's check reports
    /// the same knot) and returns how many chains the knot holds; the caller fails.
    /// Takes the graph's lock and the lock of each pool it reads, one at a time, and
    /// must be called holding no lock.
    pub(crate) fn knot(&mut self) -> Option<usize> {
        if self.ended {
            return None;
        }
        // Step 1: the waits as the graph has them now, the pools as they are now.
        let first = self.walk(|request| self.graph.lock().only(request).cloned())?;
        // Step 2: every pool again, read after every wait above was.
        let second = self.walk(|request| first.waits.get(&request).cloned())?;
        if !second.is_knot(self.request) {
            return None;
        }
        // Step 3: every member still in the same wait.
        let mut waits = self.graph.lock();
        let unchanged = second.chains.iter().all(|request| {
            let id = second.waits.get(request).map(|w| w.id);
            waits.only(*request).map(|w| w.id) == id
        });
        if !unchanged {
            return None;
        }
        waits.leave(self.request, self.id);
        self.ended = true;
        Some(second.chains.len())
    }

    /// Walks from this chain to the holders of the pool each reached chain waits on,
    /// with `wait_of` telling what a chain waits on. `None` as soon as a chain that
    /// does not wait, or a pool that could serve its waiter, is reached.
    fn walk(&self, mut wait_of: impl FnMut(u64) -> Option<Wait>) -> Option<Reach> {
        let mut reach = Reach {
            chains: vec![self.request],
            waits: HashMap::new(),
            holders: HashMap::new(),
        };
        // The chains in `chains`, for a pool of many holders.
        let mut seen = HashSet::from([self.request]);
        let mut next = 0;
        while let Some(&request) = reach.chains.get(next) {
            next += 1;
            let wait = wait_of(request)?;
            if request == self.request && wait.id != self.id {
                return None;
            }
            // A pool that is gone has no waiter left.
            let pool = wait.on.upgrade()?;
            let mut holders = Vec::new();
            let exhausted = pool.exhausted(&mut holders);
            drop(pool);
            if !exhausted {
                return None;
            }
            for &holder in &holders {
                if seen.insert(holder) {
                    reach.chains.push(holder);
                }
            }
            reach.waits.insert(request, wait);
            reach.holders.insert(request, holders);
        }
        Some(reach)
    }
}

impl Reach {
    /// Whether `me` is reached back from every chain reached from it: then every member
    /// holds something another member waits for, and `me` is one of them (not a chain
    /// that merely waits behind the knot).
    fn is_knot(&self, me: u64) -> bool {
        // Who waits on a pool each chain holds: the edges, reversed.
        let mut waiters: HashMap<u64, Vec<u64>> = HashMap::new();
        for (&waiter, holders) in &self.holders {
            for &holder in holders {
                waiters.entry(holder).or_default().push(waiter);
            }
        }
        let mut back = HashSet::from([me]);
        let mut todo = vec![me];
        while let Some(chain) = todo.pop() {
            for &waiter in waiters.get(&chain).into_iter().flatten() {
                if back.insert(waiter) {
                    todo.push(waiter);
                }
            }
        }
        back.len() == self.chains.len()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.graph.lock().leave(self.request, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A pool whose state the test sets (`None`: an instance is free), and that runs
    /// something once, right after it was read (to change things in the middle of a
    /// check).
    #[derive(Default)]
    struct Fake {
        state: Mutex<Option<Vec<u64>>>,
        after_read: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    impl Fake {
        /// Exhausted, held by `holders`.
        fn held_by(holders: &[u64]) -> Arc<Fake> {
            let fake = Arc::new(Fake::default());
            fake.set(Some(holders));
            fake
        }

        fn set(&self, holders: Option<&[u64]>) {
            *self.state.lock().unwrap() = holders.map(<[u64]>::to_vec);
        }

        fn after_read(&self, f: impl FnOnce() + Send + 'static) {
            *self.after_read.lock().unwrap() = Some(Box::new(f));
        }
    }

    impl Resource for Fake {
        fn exhausted(&self, holders: &mut Vec<u64>) -> bool {
            let exhausted = match &*self.state.lock().unwrap() {
                Some(h) => {
                    holders.extend_from_slice(h);
                    true
                }
                None => false,
            };
            if let Some(f) = self.after_read.lock().unwrap().take() {
                f();
            }
            exhausted
        }
    }

    fn weak(fake: &Arc<Fake>) -> Weak<dyn Resource> {
        let weak: Weak<Fake> = Arc::downgrade(fake);
        weak
    }

    /// Two chains, each holding what the other waits for: the first check finds the
    /// knot of two and ends its own wait; the other's check then finds nothing.
    #[test]
    fn a_cycle_of_two_is_a_knot_reported_once() {
        let graph = WaitGraph::default();
        let (p, q) = (Fake::held_by(&[1]), Fake::held_by(&[2]));
        let mut one = graph.enter(1, weak(&q));
        let mut two = graph.enter(2, weak(&p));
        assert_eq!(two.knot(), Some(2));
        assert_eq!(graph.waiting(), 1);
        assert_eq!(one.knot(), None);
        drop((one, two));
        assert_eq!(graph.waiting(), 0);
    }

    /// A chain that waits behind a knot, holding nothing its members wait for, is not
    /// a member; a member is (the knot reaches no further).
    #[test]
    fn a_chain_waiting_behind_a_knot_is_not_a_member() {
        let graph = WaitGraph::default();
        let (p, q) = (Fake::held_by(&[1]), Fake::held_by(&[2]));
        let _one = graph.enter(1, weak(&q));
        let mut two = graph.enter(2, weak(&p));
        let mut three = graph.enter(3, weak(&p));
        assert_eq!(three.knot(), None);
        assert_eq!(two.knot(), Some(2));
    }

    /// A knot of three chains, and of chains that hold several instances of a pool,
    /// some of them their own.
    #[test]
    fn knots_of_three_and_of_pools_of_several() {
        let graph = WaitGraph::default();
        let (p, q, r) = (
            Fake::held_by(&[1]),
            Fake::held_by(&[2]),
            Fake::held_by(&[3]),
        );
        let _one = graph.enter(1, weak(&q));
        let _two = graph.enter(2, weak(&r));
        let mut three = graph.enter(3, weak(&p));
        assert_eq!(three.knot(), Some(3));

        let graph = WaitGraph::default();
        let pool = Fake::held_by(&[4, 5, 6, 7]);
        let mut waits: Vec<_> = (4..8).map(|r| graph.enter(r, weak(&pool))).collect();
        assert_eq!(waits[3].knot(), Some(4));
        assert!(waits.iter_mut().all(|w| w.knot().is_none()));
        // One of them running (not waiting): none of the others is blocked.
        let graph = WaitGraph::default();
        let mut waits: Vec<_> = (4..7).map(|r| graph.enter(r, weak(&pool))).collect();
        assert!(waits.iter_mut().all(|w| w.knot().is_none()));
    }

    /// A holder that runs (does not wait), or a pool with room, ends the check.
    #[test]
    fn a_running_holder_or_a_free_instance_is_no_knot() {
        let graph = WaitGraph::default();
        let (p, q) = (Fake::held_by(&[1]), Fake::held_by(&[3]));
        let _one = graph.enter(1, weak(&q));
        let mut two = graph.enter(2, weak(&p));
        // 3 holds q and runs.
        assert_eq!(two.knot(), None);
        // 3 waits on p: 1 and 3 are a knot, 2 waits behind it... unless p has room.
        let mut three = graph.enter(3, weak(&p));
        p.set(None);
        assert_eq!(three.knot(), None);
        p.set(Some(&[1]));
        assert_eq!(three.knot(), Some(2));
    }

    /// A chain that was waiting when the check read its wait, and was served before
    /// the check ended, is never taken for blocked: whether its wait is simply gone, or
    /// it waits again (a new wait) by then.
    #[test]
    fn a_chain_served_during_the_check_is_no_member() {
        for waits_again in [false, true] {
            let graph = Arc::new(WaitGraph::default());
            let (p, q) = (Fake::held_by(&[1]), Fake::held_by(&[2]));
            let mut one = graph.enter(1, weak(&q));
            let two = graph.start(2, weak(&p));
            // Right after the check of 1 reads p (which 2 waits on), 2 is served and
            // maybe waits on p again; the pools then read as before.
            let (g, p_weak) = (graph.clone(), weak(&p));
            p.after_read(move || {
                g.lock().leave(2, two);
                if waits_again {
                    g.start(2, p_weak);
                }
            });
            assert_eq!(one.knot(), None, "waits again: {waits_again}");
        }
    }

    /// A holder that runs when its pool is read, then frees it and waits for what the
    /// checking chain holds: the first walk sees a knot that never was (the pool has a
    /// free instance by the time the holder waits); the second read of the pools does
    /// not.
    #[test]
    fn a_holder_that_waits_after_its_pool_was_read_is_read_again() {
        let graph = Arc::new(WaitGraph::default());
        let (p, q) = (Fake::held_by(&[3]), Fake::held_by(&[1]));
        let mut one = graph.enter(1, weak(&p));
        let (g, p2, q_weak) = (graph.clone(), p.clone(), weak(&q));
        p.after_read(move || {
            p2.set(None);
            g.start(3, q_weak);
        });
        assert_eq!(one.knot(), None);
        // Had 3 kept p, it would be a knot.
        p.set(Some(&[3]));
        assert_eq!(one.knot(), Some(2));
    }

    /// Two waits of one request at once (calls of one request on two threads): that
    /// request is never taken for blocked.
    #[test]
    fn a_request_waiting_twice_is_not_blocked() {
        let graph = WaitGraph::default();
        let (p, q) = (Fake::held_by(&[1]), Fake::held_by(&[2]));
        let mut one = graph.enter(1, weak(&q));
        let _two = graph.enter(2, weak(&p));
        let _two_again = graph.enter(2, weak(&p));
        assert_eq!(one.knot(), None);
    }

    /// A pool that is gone ends the check.
    #[test]
    fn a_dropped_pool_is_no_knot() {
        let graph = WaitGraph::default();
        let p = Fake::held_by(&[1]);
        let mut one = graph.enter(1, weak(&p));
        drop(p);
        assert_eq!(one.knot(), None);
    }
}
