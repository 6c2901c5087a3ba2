//! The engine's clock: a coarse wall clock counted in epoch ticks, and the ticker thread
//! that advances wasmtime's epoch while guests with a timeout may be running.
//!
//! Timeouts are measured on the wall clock, not by counting epoch checks: a guest that
//! spends milliseconds between two checks (a bulk memory instruction, an intrinsic over
//! its whole memory) is still stopped at its first check past the deadline.
//!
//! The ticker only runs when the engine has a timeout, and sleeps while no call is in
//! flight: calls with a timeout count themselves in and out ([`Clock::enter`],
//! [`Clock::leave`]), and the ticker sleeps once none is in flight and [`IDLE`] has
//! passed since the last activity; the next call wakes it. While a call is in flight
//! it never sleeps: a guest's epoch deadline is set after its callback returns, so only
//! a ticker that keeps advancing the epoch is sure to reach it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use membrane_runtime::{Error, Result};

/// How long the ticker keeps ticking after the last activity before it sleeps.
pub(crate) const IDLE: Duration = Duration::from_millis(10);

/// The shared state of a clock.
pub(crate) struct Clock {
    engine: wasmtime::Engine,
    start: Instant,
    tick: Duration,
    /// Ticks since `start`, as of the ticker's (or a waker's) last reading.
    now: AtomicU64,
    /// The tick of the last activity.
    last_active: AtomicU64,
    /// Calls (with a timeout) in flight.
    active: AtomicU64,
    /// Ticks of inactivity after which the ticker sleeps.
    idle_ticks: u64,
    /// Whether the ticker is asleep (parked until woken).
    sleeping: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
    /// How many times the ticker advanced the epoch (for tests and diagnostics).
    ticks: AtomicU64,
}

impl Clock {
    /// Ticks since the clock started, read from the operating system's clock.
    fn elapsed_ticks(&self) -> u64 {
        let elapsed = self.start.elapsed().as_nanos() / self.tick.as_nanos().max(1);
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    /// Records activity and returns the current tick; wakes the ticker if it sleeps (the
    /// slow path, at most once per [`IDLE`] period). Cheap: two loads on the fast path,
    /// and one store per tick.
    #[inline]
    pub(crate) fn touch(&self) -> u64 {
        let now = self.now.load(Ordering::Acquire);
        if self.last_active.load(Ordering::Relaxed) < now {
            self.last_active.fetch_max(now, Ordering::SeqCst);
        }
        if self.sleeping.load(Ordering::SeqCst) {
            return self.wake();
        }
        now
    }

    /// Wakes the sleeping ticker; returns the current tick, read from the OS clock (the
    /// ticker's reading is stale while it sleeps).
    #[cold]
    fn wake(&self) -> u64 {
        let now = self.elapsed_ticks();
        self.now.fetch_max(now, Ordering::AcqRel);
        self.last_active.fetch_max(now, Ordering::SeqCst);
        self.sleeping.store(false, Ordering::SeqCst);
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
        now
    }

    /// Counts a call in: the ticker does not sleep until it leaves.
    #[inline]
    pub(crate) fn enter(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a call out.
    #[inline]
    pub(crate) fn leave(&self) {
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// The deadline tick of a call that starts now and may run `timeout_ticks`. One
    /// tick more than the timeout: the clock's reading may be up to one tick old.
    #[inline]
    pub(crate) fn deadline(&self, timeout_ticks: u64) -> u64 {
        self.touch().saturating_add(timeout_ticks).saturating_add(1)
    }

    /// The first tick at or after `at` (a call whose deadline is `at` stops at its
    /// first check on or after that tick).
    pub(crate) fn tick_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start).as_nanos();
        u64::try_from(since.div_ceil(self.tick.as_nanos().max(1))).unwrap_or(u64::MAX)
    }

    /// When the tick `tick` begins.
    pub(crate) fn instant_of(&self, tick: u64) -> Option<Instant> {
        let nanos = u64::try_from(self.tick.as_nanos())
            .ok()?
            .checked_mul(tick)?;
        self.start.checked_add(Duration::from_nanos(nanos))
    }

    /// The ticker thread's loop.
    fn run(&self) {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let now = self.elapsed_ticks();
            self.now.fetch_max(now, Ordering::AcqRel);
            if self.is_idle(now) {
                self.sleeping.store(true, Ordering::SeqCst);
                // Announced first, checked second (a caller does the reverse), so either
                // the caller sees the ticker asleep and wakes it, or the ticker sees the
                // caller's activity and stays awake.
                if self.is_idle(now) {
                    while self.sleeping.load(Ordering::SeqCst) && !self.stop.load(Ordering::Acquire)
                    {
                        std::thread::park();
                    }
                    continue;
                }
                self.sleeping.store(false, Ordering::SeqCst);
            }
            self.engine.increment_epoch();
            self.ticks.fetch_add(1, Ordering::Relaxed);
            std::thread::park_timeout(self.tick);
        }
    }

    fn is_idle(&self, now: u64) -> bool {
        self.active.load(Ordering::SeqCst) == 0
            && now.saturating_sub(self.last_active.load(Ordering::SeqCst)) > self.idle_ticks
    }

    /// How many times the ticker has advanced the epoch.
    #[cfg(test)]
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// Owns the ticker thread of a clock; stops and joins it when dropped.
pub(crate) struct Ticker {
    clock: Arc<Clock>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts a clock of `tick` and its (sleeping) ticker thread.
    pub(crate) fn start(engine: wasmtime::Engine, tick: Duration) -> Result<Ticker> {
        let idle_ticks = (IDLE.as_nanos() / tick.as_nanos().max(1)).max(2);
        let clock = Arc::new(Clock {
            engine,
            start: Instant::now(),
            tick,
            now: AtomicU64::new(0),
            last_active: AtomicU64::new(0),
            active: AtomicU64::new(0),
            idle_ticks: u64::try_from(idle_ticks).unwrap_or(u64::MAX),
            // Asleep until the first call.
            sleeping: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            ticks: AtomicU64::new(0),
        });
        let running = clock.clone();
        let thread = std::thread::Builder::new()
            .name("membrane-epoch".into())
            .spawn(move || {
                // Starts asleep: parks until the first activity wakes it.
                while running.sleeping.load(Ordering::SeqCst)
                    && !running.stop.load(Ordering::Acquire)
                {
                    std::thread::park();
                }
                running.run();
            })
            .map_err(|e| Error::host(format_args!("cannot start the epoch ticker thread: {e}")))?;
        let _ = clock.thread.set(thread.thread().clone());
        Ok(Ticker {
            clock,
            thread: Some(thread),
        })
    }

    /// The clock this ticker drives.
    pub(crate) fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.clock.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticker(tick: Duration) -> Ticker {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        Ticker::start(wasmtime::Engine::new(&config).unwrap(), tick).unwrap()
    }

    /// Sleeps long enough for a ticker of 1 ms to tick many times if it ran.
    fn idle_period() {
        std::thread::sleep(IDLE * 5);
    }

    #[test]
    fn an_idle_ticker_does_not_tick() {
        let ticker = ticker(Duration::from_millis(1));
        idle_period();
        assert_eq!(ticker.clock().ticks(), 0, "ticked before any activity");
    }

    #[test]
    fn activity_wakes_the_ticker_and_it_sleeps_again_after() {
        let ticker = ticker(Duration::from_millis(1));
        let clock = ticker.clock();
        // Keep it busy for a while.
        let until = Instant::now() + IDLE * 3;
        while Instant::now() < until {
            clock.touch();
            std::thread::sleep(Duration::from_millis(1));
        }
        let busy = clock.ticks();
        assert!(busy > 0, "no tick while active");
        // Let it fall asleep, then check that it stays asleep.
        idle_period();
        let asleep = clock.ticks();
        idle_period();
        assert_eq!(clock.ticks(), asleep, "ticked while idle");
        // And wakes up again.
        let woke_at = clock.touch();
        let until = Instant::now() + IDLE * 50;
        while clock.ticks() == asleep && Instant::now() < until {
            clock.touch();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            clock.ticks() > asleep,
            "did not wake up (woke at tick {woke_at})"
        );
    }

    /// A call in flight keeps the ticker awake even with no other activity (a guest
    /// descheduled between its epoch callback and its next check must still find the
    /// epoch advanced), and it sleeps once the call leaves.
    #[test]
    fn the_ticker_does_not_sleep_while_a_call_is_in_flight() {
        let ticker = ticker(Duration::from_millis(1));
        let clock = ticker.clock();
        clock.enter();
        clock.touch();
        std::thread::sleep(IDLE * 3);
        let before = clock.ticks();
        std::thread::sleep(IDLE * 3);
        assert!(clock.ticks() > before, "slept with a call in flight");
        clock.leave();
        idle_period();
        let asleep = clock.ticks();
        idle_period();
        assert_eq!(clock.ticks(), asleep, "ticked with no call in flight");
    }

    #[test]
    fn the_clock_follows_wall_time_while_the_ticker_sleeps() {
        let ticker = ticker(Duration::from_millis(1));
        let clock = ticker.clock();
        let before = clock.touch();
        idle_period();
        let after = clock.touch();
        assert!(
            after >= before + (IDLE * 5).as_millis() as u64,
            "{before} -> {after}"
        );
    }
}
