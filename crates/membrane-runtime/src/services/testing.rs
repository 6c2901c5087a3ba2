//! Deterministic providers for tests of modules that use the host services: a fixed or
//! stepped clock, seeded randomness, a log that captures its lines, an effect handler
//! that records (and may refuse) effects, and an in-memory key-value store. Give them
//! to [`Services`](crate::Services) and test modules reproducibly.
//!
//! ```
//! use membrane_runtime::testing::{CapturingLog, RecordingEffects, SeededRandom, SteppedClock};
//! use membrane_runtime::{Clock, RandomSource};
//!
//! let clock = SteppedClock::new(1_000, 10); // 1000 ns, +10 ns per read
//! assert_eq!((clock.wall_nanos(), clock.wall_nanos()), (1_000, 1_010));
//!
//! let (a, b) = (SeededRandom::new(7), SeededRandom::new(7));
//! let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
//! a.fill(&mut x).unwrap();
//! b.fill(&mut y).unwrap();
//! assert_eq!(x, y); // same seed, same bytes
//!
//! let effects = RecordingEffects::new().refuse("payments.charge");
//! assert!(effects.recorded().is_empty());
//! let log = CapturingLog::new();
//! assert!(log.lines().is_empty());
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use membrane_types::ErrorCode;

use super::clock::Clock;
use super::effects::{Effect, EffectHandler};
use super::log::{LogLevel, LogRecord, LogSink, LogSource};
use super::random::RandomSource;
use crate::error::HostError;

pub use super::kv::MemoryKv;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A clock that shows what it is set to: both clocks stand still until moved
/// ([`FixedClock::set_nanos`], [`FixedClock::advance_nanos`]). Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct FixedClock {
    wall: Arc<AtomicU64>,
    monotonic: Arc<AtomicU64>,
}

impl FixedClock {
    /// Wall time `nanos` since the Unix epoch, monotonic time 0.
    pub fn at_nanos(nanos: u64) -> FixedClock {
        FixedClock {
            wall: Arc::new(AtomicU64::new(nanos)),
            monotonic: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the wall time (the monotonic clock does not move).
    pub fn set_nanos(&self, nanos: u64) {
        self.wall.store(nanos, Ordering::SeqCst);
    }

    /// Moves both clocks forward by `nanos`.
    pub fn advance_nanos(&self, nanos: u64) {
        self.wall.fetch_add(nanos, Ordering::SeqCst);
        self.monotonic.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn wall_nanos(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn monotonic_nanos(&self) -> u64 {
        self.monotonic.load(Ordering::SeqCst)
    }
}

/// A clock that moves forward by a fixed step at every read (of either clock): wall
/// time starts at `start`, monotonic time at 0. Clones share the time.
#[derive(Clone, Debug)]
pub struct SteppedClock {
    reads: Arc<AtomicU64>,
    start: u64,
    step: u64,
}

impl SteppedClock {
    /// A clock at `start` nanoseconds since the epoch, `step` more at each read.
    pub fn new(start: u64, step: u64) -> SteppedClock {
        SteppedClock {
            reads: Arc::new(AtomicU64::new(0)),
            start,
            step,
        }
    }

    fn next(&self) -> u64 {
        self.reads
            .fetch_add(1, Ordering::SeqCst)
            .saturating_mul(self.step)
    }
}

impl Clock for SteppedClock {
    fn wall_nanos(&self) -> u64 {
        self.start.saturating_add(self.next())
    }

    fn monotonic_nanos(&self) -> u64 {
        self.next()
    }
}

/// Random bytes that are the same for the same seed, in the same order of requests:
/// blake3's extendable output keyed by the seed. Not for secrets. Clones share the
/// stream.
#[derive(Clone)]
pub struct SeededRandom {
    stream: Arc<Mutex<blake3::OutputReader>>,
}

impl SeededRandom {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let reader = blake3::Hasher::new_keyed(&key)
            .update(b"membrane SeededRandom")
            .finalize_xof();
        SeededRandom {
            stream: Arc::new(Mutex::new(reader)),
        }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        lock(&self.stream).fill(buf);
        Ok(())
    }
}

impl std::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededRandom").finish_non_exhaustive()
    }
}

/// A log line as [`CapturingLog`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapturedLine {
    /// The module.
    pub module: String,
    /// The request (0: a lifecycle hook).
    pub request_id: u64,
    /// The level.
    pub level: LogLevel,
    /// What produced it.
    pub source: LogSource,
    /// The text.
    pub message: String,
}

/// A log sink that keeps every line, for tests to read ([`CapturingLog::lines`]).
/// Clones share the lines.
#[derive(Clone, Debug, Default)]
pub struct CapturingLog {
    lines: Arc<Mutex<Vec<CapturedLine>>>,
}

impl CapturingLog {
    /// An empty log.
    pub fn new() -> CapturingLog {
        CapturingLog::default()
    }

    /// Every line so far, oldest first.
    pub fn lines(&self) -> Vec<CapturedLine> {
        lock(&self.lines).clone()
    }

    /// The messages so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        lock(&self.lines)
            .iter()
            .map(|l| l.message.clone())
            .collect()
    }

    /// Forgets every line.
    pub fn clear(&self) {
        lock(&self.lines).clear();
    }
}

impl LogSink for CapturingLog {
    fn log(&self, record: &LogRecord<'_>) {
        lock(&self.lines).push(CapturedLine {
            module: record.module.to_string(),
            request_id: record.request_id,
            level: record.level,
            source: record.source,
            message: record.message.to_string(),
        });
    }
}

/// An effect as [`RecordingEffects`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedEffect {
    /// The module.
    pub module: String,
    /// The request (0: a lifecycle hook).
    pub request_id: u64,
    /// Its kind.
    pub kind: String,
    /// Its data.
    pub payload: Vec<u8>,
}

/// An effect handler that records every effect it accepts and refuses the kinds it is
/// told to (with `ErrorCode::DENIED`; refused effects are not recorded). Clones share
/// the record.
#[derive(Clone, Debug, Default)]
pub struct RecordingEffects {
    recorded: Arc<Mutex<Vec<RecordedEffect>>>,
    refused: Arc<HashSet<String>>,
}

impl RecordingEffects {
    /// Accepts every effect.
    pub fn new() -> RecordingEffects {
        RecordingEffects::default()
    }

    /// Refuses effects of `kind` too.
    #[must_use]
    pub fn refuse(self, kind: &str) -> RecordingEffects {
        let mut refused = (*self.refused).clone();
        refused.insert(kind.to_string());
        RecordingEffects {
            recorded: self.recorded,
            refused: Arc::new(refused),
        }
    }

    /// The accepted effects so far, oldest first.
    pub fn recorded(&self) -> Vec<RecordedEffect> {
        lock(&self.recorded).clone()
    }
}

impl EffectHandler for RecordingEffects {
    fn handle(&self, effect: &Effect<'_>) -> Result<(), HostError> {
        if self.refused.contains(effect.kind) {
            return Err(HostError::new(
                ErrorCode::DENIED,
                format!("effect `{}` refused by the host", effect.kind),
            ));
        }
        lock(&self.recorded).push(RecordedEffect {
            module: effect.module.to_string(),
            request_id: effect.request_id,
            kind: effect.kind.to_string(),
            payload: effect.payload.to_vec(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let clock = FixedClock::at_nanos(5);
        let shared = clock.clone();
        assert_eq!((clock.wall_nanos(), clock.monotonic_nanos()), (5, 0));
        shared.advance_nanos(10);
        assert_eq!((clock.wall_nanos(), clock.monotonic_nanos()), (15, 10));
        shared.set_nanos(1);
        assert_eq!((clock.wall_nanos(), clock.monotonic_nanos()), (1, 10));
    }

    #[test]
    fn stepped_clock_steps_on_every_read() {
        let clock = SteppedClock::new(100, 3);
        assert_eq!(clock.monotonic_nanos(), 0);
        assert_eq!(clock.wall_nanos(), 103);
        assert_eq!(clock.monotonic_nanos(), 6);
    }

    #[test]
    fn seeded_random_repeats_per_seed_and_differs_between_seeds() {
        let draw = |seed| {
            let r = SeededRandom::new(seed);
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            r.fill(&mut a).unwrap();
            r.fill(&mut b).unwrap();
            (a, b)
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let (a, b) = draw(1);
        assert_ne!(a, b, "the stream moves on");
    }

    #[test]
    fn recording_effects_records_and_refuses() {
        let effects = RecordingEffects::new().refuse("no");
        let effect = |kind| Effect {
            module: "m",
            request_id: 3,
            kind,
            payload: b"p",
        };
        effects.handle(&effect("yes")).unwrap();
        let e = effects.handle(&effect("no")).unwrap_err();
        assert_eq!(e.code, ErrorCode::DENIED);
        let recorded = effects.recorded();
        assert_eq!(recorded.len(), 1);
        assert_eq!(
            (recorded[0].kind.as_str(), recorded[0].request_id),
            ("yes", 3)
        );
    }
}
