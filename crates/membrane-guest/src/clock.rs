//! The host's clocks (imports `membrane_services.clock_wall` and `clock_monotonic`,
//! grant `clock`): a module has no clock of its own on `wasm32-unknown-unknown`.
//!
//! ```
//! # fn f() -> Result<(), membrane_guest::Error> {
//! use membrane_guest::clock;
//!
//! let started = clock::monotonic()?;
//! // ... work ...
//! let took = clock::monotonic()? - started;
//! let since_epoch = clock::now()?;
//! # Ok(()) }
//! # // Off wasm32 there is no host.
//! # assert_eq!(f().unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
//! ```
//!
//! Off wasm32 every function returns an error with code `NOT_FOUND`.

use core::time::Duration;

use crate::error::Error;
use crate::host::call_host;
use crate::services::imports;

/// The wall clock: nanoseconds since the Unix epoch, as the host reads its clock (which
/// may be set back). Request empty; response postcard `u64`.
pub fn wall_nanos() -> Result<u64, Error> {
    call_host("membrane_services.clock_wall", imports::clock_wall, &())
}

/// The wall clock as the time since the Unix epoch (see [`wall_nanos`]).
pub fn now() -> Result<Duration, Error> {
    wall_nanos().map(Duration::from_nanos)
}

/// The monotonic clock: nanoseconds since an origin the runtime fixes, never less than
/// an earlier reading in the same runtime. For measuring time, not for dates. Request
/// empty; response postcard `u64`.
pub fn monotonic_nanos() -> Result<u64, Error> {
    call_host(
        "membrane_services.clock_monotonic",
        imports::clock_monotonic,
        &(),
    )
}

/// The monotonic clock as the time since the runtime's origin (see
/// [`monotonic_nanos`]).
pub fn monotonic() -> Result<Duration, Error> {
    monotonic_nanos().map(Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_types::ErrorCode;

    #[test]
    fn off_wasm32_clocks_report_not_found() {
        assert_eq!(wall_nanos().unwrap_err().code, ErrorCode::NOT_FOUND);
        assert_eq!(now().unwrap_err().code, ErrorCode::NOT_FOUND);
        assert_eq!(monotonic_nanos().unwrap_err().code, ErrorCode::NOT_FOUND);
        assert_eq!(monotonic().unwrap_err().code, ErrorCode::NOT_FOUND);
    }
}
