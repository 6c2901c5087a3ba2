//! Takes notes with the host's services: logs (grant `log`), effects (`effects`),
//! clocks (`clock`), randomness (`random`), assertions and breakpoints (`debug`).
//!
//! Exports (input → output, postcard):
//!
//! - `note(text: String) -> u64`: logs `note: <text>` at info, emits the effect
//!   `note.saved` with the text's bytes, and returns the wall clock (nanoseconds since
//!   the Unix epoch).
//! - `log_at((level, msg): (u8, String)) -> ()`: logs `msg` at `level` (0 trace, 1
//!   debug, 2 info, 3 warn, 4 error; another level is an error 1000).
//! - `flood_log(n: u32) -> (u32, u32)`: logs `n` lines at info, stopping at the first
//!   error; how many were logged, and the error's code (13 `LIMIT_EXCEEDED` when the
//!   host's budget ran out), or 0.
//! - `emit((kind, payload): (String, Vec<u8>)) -> ()`: emits the effect `kind` with
//!   `payload`.
//! - `now(()) -> (u64, u64)`: the wall clock and the monotonic clock, in nanoseconds.
//! - `random(n: u32) -> Vec<u8>`: `n` random bytes.
//! - `check(value: i64) -> i64`: `value`, or error 19 `ASSERTION_FAILED` with the
//!   message `value <value> is negative`.
//! - `mark(label: String) -> ()`: passes the breakpoint `label`.
//!
//! Its stop hook logs `notes stopped` (services work in lifecycle hooks too).

use membrane_guest::log::{self, Level};
use membrane_guest::{Error, clock, debug, effects, ensure, export, info};

/// Logs and emits the note; the wall clock.
#[export]
pub fn note(text: String) -> Result<u64, Error> {
    info!("note: {text}")?;
    effects::emit("note.saved", text.as_bytes())?;
    clock::wall_nanos()
}

/// Logs `msg` at `level`.
#[export]
pub fn log_at(input: (u8, String)) -> Result<(), Error> {
    let (level, msg) = input;
    let level = match level {
        0 => Level::Trace,
        1 => Level::Debug,
        2 => Level::Info,
        3 => Level::Warn,
        4 => Level::Error,
        other => return Err(Error::new(1000, format!("no log level {other}"))),
    };
    log::log(level, &msg)
}

/// Logs `n` lines until one fails: `(logged, the error's code or 0)`.
#[export]
pub fn flood_log(n: u32) -> Result<(u32, u32), Error> {
    for i in 0..n {
        if let Err(e) = info!("line {i}") {
            return Ok((i, e.code.0));
        }
    }
    Ok((n, 0))
}

/// Emits the effect `kind` with `payload`.
#[export]
pub fn emit(input: (String, Vec<u8>)) -> Result<(), Error> {
    let (kind, payload) = input;
    effects::emit(&kind, &payload)
}

/// The wall clock and the monotonic clock, in nanoseconds.
#[export]
pub fn now() -> Result<(u64, u64), Error> {
    Ok((clock::wall_nanos()?, clock::monotonic_nanos()?))
}

/// `n` random bytes.
#[export]
pub fn random(n: u32) -> Result<Vec<u8>, Error> {
    membrane_guest::random::bytes(n as usize)
}

/// `value` when it is not negative.
#[export]
pub fn check(value: i64) -> Result<i64, Error> {
    ensure!(value >= 0, "value {} is negative", value)?;
    Ok(value)
}

/// Passes the breakpoint `label`.
#[export]
pub fn mark(label: String) -> Result<(), Error> {
    debug::breakpoint(&label)
}

/// Logs that the instance stops.
#[membrane_guest::stop]
fn stop() -> Result<(), Error> {
    log::info("notes stopped")
}
