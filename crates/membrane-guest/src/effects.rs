//! Effects: records a module hands its host to act on after the call (import
//! `membrane_services.emit`, grant `effects`), such as "send this email" or "this
//! order was placed". The module only describes the effect; the host decides what to do
//! with it, and a module stays testable without the world it affects.
//!
//! ```
//! use membrane_guest::{effects, export, Error};
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Placed<'a> { order: u64, customer: &'a str }
//!
//! #[export]
//! pub fn place(order: u64) -> Result<(), Error> {
//!     effects::emit_value("order.placed", &Placed { order, customer: "ada" })?;
//!     effects::emit("audit", b"placed")
//! }
//! # // Off wasm32 there is no host.
//! # assert_eq!(place(7).unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
//! ```
//!
//! Off wasm32 every function returns an error with code `NOT_FOUND`.

use serde::Serialize;

use crate::error::Error;
use crate::host::{call_host, call_host_prefixed};
use crate::services::imports;

const NAME: &str = "membrane_services.emit";

/// Emits an effect of kind `kind` with `payload` as it is. Request: postcard `kind`,
/// then the payload; response empty.
pub fn emit(kind: &str, payload: &[u8]) -> Result<(), Error> {
    call_host_prefixed(NAME, imports::emit, &kind, payload, |_| ())
}

/// Emits an effect of kind `kind` whose payload is `value`'s postcard encoding (see
/// [`emit`]), serialized straight into the request.
pub fn emit_value<T: Serialize + ?Sized>(kind: &str, value: &T) -> Result<(), Error> {
    // Postcard writes a tuple as its fields one after the other: `kind`, then the
    // value's encoding, which is the payload.
    call_host(NAME, imports::emit, &(kind, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_types::ErrorCode;

    #[test]
    fn off_wasm32_effects_report_not_found() {
        assert_eq!(emit("k", b"p").unwrap_err().code, ErrorCode::NOT_FOUND);
        assert_eq!(
            emit_value("k", &(1u32, "x")).unwrap_err().code,
            ErrorCode::NOT_FOUND
        );
    }

    /// The typed request is the bytes request with the value's encoding as payload.
    #[test]
    fn typed_payload_is_the_value_after_the_kind() {
        let value = (7u64, "ada");
        let typed = postcard::to_allocvec(&("order.placed", &value)).unwrap();
        let mut bytes = postcard::to_allocvec(&"order.placed").unwrap();
        bytes.extend(postcard::to_allocvec(&value).unwrap());
        assert_eq!(typed, bytes);
    }
}
