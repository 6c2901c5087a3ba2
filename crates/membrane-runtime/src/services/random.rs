//! The random service: bytes from a [`RandomSource`] (by default [`OsRandom`], the
//! operating system's source).

/// The most bytes one request of a guest may ask for (`membrane_guest::random::fill`
/// splits larger buffers); a larger request is refused with
/// `ErrorCode::LIMIT_EXCEEDED`.
pub const MAX_RANDOM_REQUEST: usize = 64 * 1024;

/// Where a runtime's modules draw random bytes.
pub trait RandomSource: Send + Sync + 'static {
    /// Fills `buf`, or says why it cannot (the guest gets the message with
    /// `ErrorCode::HOST_FUNCTION_FAILED`).
    fn fill(&self, buf: &mut [u8]) -> Result<(), String>;
}

/// The default [`RandomSource`]: the operating system's (`getrandom`; in a browser,
/// its crypto API).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        getrandom::fill(buf)
            .map_err(|e| format!("the operating system's random source failed: {e}"))
    }
}
