//! The clock service: wall time and a monotonic clock, from a [`Clock`] (by default
//! [`SystemClock`]).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where a runtime's modules read the time.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch (0 for a clock set before it).
    fn wall_nanos(&self) -> u64;
    /// Nanoseconds since an origin fixed for the clock's life; never goes back.
    fn monotonic_nanos(&self) -> u64;
}

/// The default [`Clock`]: the system's wall clock and `Instant` since the clock was
/// made.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn wall_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
