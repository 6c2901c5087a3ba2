//! Log lines to the host (import `membrane_services.log`, grant `log`): the host
//! records each with the module's name and the level.
//!
//! ```
//! use membrane_guest::{export, Error};
//!
//! #[export]
//! pub fn greet(name: String) -> Result<String, Error> {
//!     membrane_guest::info!("greeting {name}")?;
//!     if name.is_empty() {
//!         membrane_guest::log::warn("empty name")?;
//!     }
//!     Ok(format!("hello, {name}"))
//! }
//! # // Off wasm32 there is no host: logging reports NOT_FOUND.
//! # assert_eq!(greet("ada".into()).unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
//! ```
//!
//! Logging can fail: the host may refuse a line with `ErrorCode::LIMIT_EXCEEDED` when
//! it is longer than the host allows or when the call has logged its budget of lines
//! (nothing is logged then). A module that must not fail for its logging ignores the
//! result (`let _ = info!(..)`). Off wasm32 every function returns an error with code
//! `NOT_FOUND`.
//!
//! The macros [`log!`](crate::log!), [`trace!`](crate::trace!),
//! [`debug!`](crate::debug!), [`info!`](crate::info!), [`warn!`](crate::warn!) and
//! [`error!`](crate::error!) format their arguments like `format!` and evaluate to the
//! `Result` of the log call; a message without arguments is sent without being copied.

use core::fmt;

use crate::error::Error;
use crate::host::call_host;
use crate::services::imports;

/// How severe a log line is; the import takes it as its `u8` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Very detailed tracing (0).
    Trace = 0,
    /// Debugging detail (1).
    Debug = 1,
    /// Ordinary information (2).
    Info = 2,
    /// Something looks wrong (3).
    Warn = 3,
    /// Something failed (4).
    Error = 4,
}

/// Logs `message` at `level`. Request: postcard `(level: u8, message: &str)`; response
/// empty.
pub fn log(level: Level, message: &str) -> Result<(), Error> {
    call_host(
        "membrane_services.log",
        imports::log,
        &(level as u8, message),
    )
}

/// Logs `message` at [`Level::Trace`].
pub fn trace(message: &str) -> Result<(), Error> {
    log(Level::Trace, message)
}

/// Logs `message` at [`Level::Debug`].
pub fn debug(message: &str) -> Result<(), Error> {
    log(Level::Debug, message)
}

/// Logs `message` at [`Level::Info`].
pub fn info(message: &str) -> Result<(), Error> {
    log(Level::Info, message)
}

/// Logs `message` at [`Level::Warn`].
pub fn warn(message: &str) -> Result<(), Error> {
    log(Level::Warn, message)
}

/// Logs `message` at [`Level::Error`].
pub fn error(message: &str) -> Result<(), Error> {
    log(Level::Error, message)
}

/// Logs formatted arguments at `level`: a message without arguments as it is, else
/// formatted into a `String` first. Used by the macros.
#[doc(hidden)]
pub fn log_args(level: Level, args: fmt::Arguments<'_>) -> Result<(), Error> {
    match args.as_str() {
        Some(message) => log(level, message),
        None => log(level, &alloc::fmt::format(args)),
    }
}

/// Logs a formatted message at a [`Level`](crate::log::Level):
/// `log!(Level::Warn, "{n} retries")`. Evaluates to `Result<(), Error>` (see
/// [`log`](mod@crate::log)).
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::__rt::log_args($level, ::core::format_args!($($arg)+))
    };
}

/// Logs a formatted message at `Level::Trace`. Evaluates to `Result<(), Error>`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {
        $crate::__rt::log_args($crate::log::Level::Trace, ::core::format_args!($($arg)+))
    };
}

/// Logs a formatted message at `Level::Debug`. Evaluates to `Result<(), Error>`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::__rt::log_args($crate::log::Level::Debug, ::core::format_args!($($arg)+))
    };
}

/// Logs a formatted message at `Level::Info`: `info!("x = {}", x)?`. Evaluates to
/// `Result<(), Error>`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::__rt::log_args($crate::log::Level::Info, ::core::format_args!($($arg)+))
    };
}

/// Logs a formatted message at `Level::Warn`. Evaluates to `Result<(), Error>`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::__rt::log_args($crate::log::Level::Warn, ::core::format_args!($($arg)+))
    };
}

/// Logs a formatted message at `Level::Error`. Evaluates to `Result<(), Error>`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::__rt::log_args($crate::log::Level::Error, ::core::format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_types::ErrorCode;

    #[test]
    fn levels_are_their_wire_values() {
        let levels = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ];
        for (value, level) in levels.into_iter().enumerate() {
            assert_eq!(level as u8 as usize, value);
        }
    }

    #[test]
    fn off_wasm32_logging_reports_not_found() {
        let x = 3;
        for result in [
            log(Level::Info, "m"),
            trace("m"),
            debug("m"),
            info("m"),
            warn("m"),
            error("m"),
            crate::log!(Level::Warn, "x = {x}"),
            crate::trace!("plain"),
            crate::debug!("x = {}", x),
            crate::info!("x = {x}"),
            crate::warn!("x"),
            crate::error!("x = {x:?}"),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.code, ErrorCode::NOT_FOUND);
            assert!(e.message.contains("membrane_services.log"), "{e}");
        }
    }
}
