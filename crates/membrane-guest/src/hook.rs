//! Lifecycle hooks (`docs/abi.md` §8): the body of the `__membrane_start` and
//! `__membrane_stop` exports that `#[start]` and `#[stop]` generate.

use crate::error::Error;
use crate::export::return_err;

/// Runs a lifecycle hook: 0 when `f` succeeds, else the packed location of an error
/// envelope (in the arena the host reset for the hook) carrying its code and message.
/// Installs the panic hook first, as exports do, so a panic reaches the host with its
/// message.
#[doc(hidden)]
pub fn run_hook<E: Into<Error>>(f: impl FnOnce() -> Result<(), E>) -> u64 {
    #[cfg(feature = "std")]
    crate::panic::install_panic_hook();
    match f() {
        Ok(()) => 0,
        Err(e) => {
            let e = e.into();
            return_err(e.code, &e.message)
        }
    }
}
