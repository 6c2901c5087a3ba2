//! Typed payloads: serde values in postcard form.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, EncodeError, postcard_reason};

/// Serializes `value` into a new payload vector (postcard).
pub fn to_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    postcard::to_allocvec(value).map_err(|e| EncodeError::Serialize {
        reason: postcard_reason(&e),
    })
}

/// Serializes `value` into `buf` and returns the part written (postcard).
pub fn to_payload_slice<'b, T: Serialize + ?Sized>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], EncodeError> {
    postcard::to_slice(value, buf).map_err(|e| EncodeError::Serialize {
        reason: postcard_reason(&e),
    })
}

/// Deserializes a whole payload into a `T`, which may borrow from it (`&str`, `&[u8]`).
/// Bytes left over after the value are an error.
pub fn from_payload<'de, T: Deserialize<'de>>(payload: &'de [u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes(payload).map_err(|e| DecodeError::Deserialize {
            reason: postcard_reason(&e),
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}
