//! Random bytes from the host (import `membrane_services.random`, grant `random`),
//! from the host's source of randomness (suitable for keys and nonces unless the host
//! was configured with a seeded source for reproducible tests).
//!
//! ```
//! # fn f() -> Result<(), membrane_guest::Error> {
//! use membrane_guest::random;
//!
//! let id = random::u64()?;
//! let mut nonce = [0u8; 12];
//! random::fill(&mut nonce)?;
//! let salt: Vec<u8> = random::bytes(16)?;
//! # Ok(()) }
//! # // Off wasm32 there is no host.
//! # assert_eq!(f().unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
//! ```
//!
//! Off wasm32 every function that needs bytes returns an error with code `NOT_FOUND`.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::Error;
use crate::host::call_host_bytes;
use crate::services::imports;
use membrane_types::ErrorCode;

/// The most bytes one request asks the host for; [`fill`] asks for more in several.
pub const MAX_REQUEST: usize = 65_536;

const NAME: &str = "membrane_services.random";

/// Fills `buf` with random bytes, in requests of at most [`MAX_REQUEST`] bytes, each
/// answer copied from where the host wrote it. Request: postcard `u32` (the count);
/// response: the bytes. An empty `buf` asks nothing.
pub fn fill(buf: &mut [u8]) -> Result<(), Error> {
    for chunk in buf.chunks_mut(MAX_REQUEST) {
        let mut request = [0u8; 5];
        let request = postcard::to_slice(&(chunk.len() as u32), &mut request)
            .map_err(crate::export::serialize_error)?;
        call_host_bytes(NAME, imports::random, request, |bytes| {
            if bytes.len() != chunk.len() {
                return Err(wrong_count(chunk.len(), bytes.len()));
            }
            chunk.copy_from_slice(bytes);
            Ok(())
        })??;
    }
    Ok(())
}

/// `n` random bytes (see [`fill`]).
pub fn bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut bytes = vec![0; n];
    fill(&mut bytes)?;
    Ok(bytes)
}

/// A random `u64` (see [`fill`]).
pub fn u64() -> Result<u64, Error> {
    let mut bytes = [0; 8];
    fill(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

#[cold]
#[inline(never)]
fn wrong_count(asked: usize, got: usize) -> Error {
    Error::new(
        ErrorCode::HOST_FUNCTION_FAILED,
        alloc::format!("host function {NAME} answered {got} bytes for {asked}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_wasm32_randomness_reports_not_found() {
        assert_eq!(fill(&mut [0; 3]).unwrap_err().code, ErrorCode::NOT_FOUND);
        assert_eq!(bytes(1).unwrap_err().code, ErrorCode::NOT_FOUND);
        assert_eq!(u64().unwrap_err().code, ErrorCode::NOT_FOUND);
        // Nothing to ask for: no request.
        assert_eq!(fill(&mut []), Ok(()));
        assert_eq!(bytes(0), Ok(Vec::new()));
    }
}
