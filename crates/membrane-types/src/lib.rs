//! The membrane envelope header, its flags, the error codes and the ABI constants.
//!
//! Everything that crosses the boundary between a membrane host and a membrane guest is
//! an *envelope*: a 12-byte [`Header`] followed by the payload. This crate defines that
//! header once, for both sides. It is `#![no_std]` and has no dependencies, so a guest
//! built for `wasm32-unknown-unknown` and a host built for anything share the exact same
//! definitions. Encoding and decoding whole envelopes (checksums, compression, typed
//! payloads) lives in `membrane-codec`.
//!
//! The format is normative in `docs/wire-format.md`; the ABI in `docs/abi.md`.
//!
//! # Example
//!
//! ```
//! use membrane_types::{Flags, Header, HEADER_LEN};
//!
//! let header = Header::new(Flags::EXPECTS_RESPONSE, 5, 0xDEAD_BEEF);
//! let bytes: [u8; HEADER_LEN] = header.to_bytes();
//! assert_eq!(&bytes[..4], &[0x41, 0x49, 1, 0b0100]);
//! assert_eq!(Header::from_bytes(&bytes), Ok(header));
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | *(none)* |        | this crate has no features and no dependencies |

#![no_std]
#![forbid(unsafe_code)]

mod abi;
mod code;
mod header;

pub use abi::*;
pub use code::ErrorCode;
pub use header::{Flags, HEADER_LEN, Header, HeaderError, MAGIC, WIRE_VERSION};
