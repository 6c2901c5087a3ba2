//! Debugging aids that report to the host (imports `membrane_services.assert_failed`
//! and `breakpoint`, grant `debug`): assertions that fail as an error the host records
//! (rather than a panic that poisons the instance), and breakpoints a host's debugger
//! or test can stop on.
//!
//! ```
//! use membrane_guest::{debug, ensure, export, Error};
//!
//! #[export]
//! pub fn withdraw(amount: i64) -> Result<i64, Error> {
//!     ensure!(amount > 0, "amount {} is not positive", amount)?;
//!     debug::breakpoint("withdraw")?;
//!     Ok(100 - amount)
//! }
//! // A failed assertion is an error with code ASSERTION_FAILED (off wasm32 too).
//! let e = withdraw(-5).unwrap_err();
//! assert_eq!(e.code, membrane_guest::ErrorCode::ASSERTION_FAILED);
//! assert_eq!(e.message, "amount -5 is not positive");
//! ```
//!
//! A holding assertion makes no host call, so a module may assert freely; the message
//! of [`ensure!`](crate::ensure!) is formatted only when the assertion fails.

use core::fmt;

use crate::error::Error;
use crate::host::call_host;
use crate::services::imports;
use membrane_types::ErrorCode;

/// `Ok(())` when `cond` holds (no host call); else tells the host (`assert_failed`,
/// request postcard `message`) and returns its error, code `ASSERTION_FAILED`. The
/// error has that code whatever the host call did (off wasm32 too, where there is no
/// host to tell): its message is then `message`.
pub fn assert(cond: bool, message: &str) -> Result<(), Error> {
    if cond { Ok(()) } else { Err(failed(message)) }
}

/// Tells the host that an assertion with `message` failed; the error to return.
#[cold]
#[inline(never)]
fn failed(message: &str) -> Error {
    match call_host::<_, ()>(
        "membrane_services.assert_failed",
        imports::assert_failed,
        &message,
    ) {
        Err(e) if e.code == ErrorCode::ASSERTION_FAILED => e,
        Ok(()) | Err(_) => Error::new(ErrorCode::ASSERTION_FAILED, message),
    }
}

/// The error of a failed [`ensure!`](crate::ensure!): formats the message and tells the
/// host (see [`assert`]). Used by the macro.
#[doc(hidden)]
#[cold]
#[inline(never)]
pub fn failed_args(args: fmt::Arguments<'_>) -> Error {
    match args.as_str() {
        Some(message) => failed(message),
        None => failed(&alloc::fmt::format(args)),
    }
}

/// Stops at the breakpoint `label` when the host has a debugger or test waiting on it,
/// and returns when it lets the module go on; otherwise the host only records that the
/// module passed it. Request: postcard `label`; response empty. Off wasm32 an error with
/// code `NOT_FOUND`.
pub fn breakpoint(label: &str) -> Result<(), Error> {
    call_host("membrane_services.breakpoint", imports::breakpoint, &label)
}

/// Asserts a condition with a formatted message: `ensure!(n > 0, "n = {} too small",
/// n)?`, or `ensure!(cond)?` with the message `assertion failed: cond`.
///
/// Evaluates to `Result<(), Error>`: `Ok(())` when the condition holds (no host call,
/// nothing formatted), else the error of [`debug::assert`](crate::debug::assert), code
/// `ASSERTION_FAILED`. It returns nothing from the enclosing function by itself: add
/// `?` (an unused `Result` is warned about).
#[macro_export]
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        $crate::ensure!(
            $cond,
            "{}",
            ::core::concat!("assertion failed: ", ::core::stringify!($cond))
        )
    };
    ($cond:expr, $($arg:tt)+) => {
        if $cond {
            ::core::result::Result::<(), $crate::Error>::Ok(())
        } else {
            ::core::result::Result::<(), $crate::Error>::Err($crate::__rt::failed_args(
                ::core::format_args!($($arg)+),
            ))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_assertions_succeed_without_a_host() {
        assert_eq!(super::assert(true, "m"), Ok(()));
        assert_eq!(crate::ensure!(1 + 1 == 2), Ok(()));
        assert_eq!(crate::ensure!(true, "never {}", "formatted"), Ok(()));
    }

    #[test]
    fn failed_assertions_are_assertion_failed_with_their_message() {
        let n = -3;
        for (result, message) in [
            (super::assert(false, "broken"), "broken"),
            (
                crate::ensure!(n > 0, "n = {} too small", n),
                "n = -3 too small",
            ),
            (crate::ensure!(n > 0, "plain"), "plain"),
            (crate::ensure!(n > 0,), "assertion failed: n > 0"),
            (crate::ensure!(n == { 1 }), "assertion failed: n == { 1 }"),
        ] {
            assert_eq!(
                result,
                Err(Error::new(ErrorCode::ASSERTION_FAILED, message))
            );
        }
    }

    #[test]
    fn off_wasm32_breakpoints_report_not_found() {
        assert_eq!(breakpoint("b").unwrap_err().code, ErrorCode::NOT_FOUND);
    }
}
