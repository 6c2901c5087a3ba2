//! Encode and decode membrane envelopes.
//!
//! An envelope is a 12-byte [`Header`] followed by a payload
//! (`docs/wire-format.md`). This crate writes and checks them: the CRC-32 that covers
//! header bytes 0–7 and the payload (verified by [`Codec::decode`];
//! [`Codec::decode_trusted`] skips only that check, for bytes a trusted party has just
//! written for this exchange), optional LZ4 compression under a [`CodecConfig`], error
//! envelopes (code + UTF-8 message) and typed payloads with serde + postcard.
//!
//! It is `no_std` + `alloc`, and works without copying where it can: [`Codec::encode_into`]
//! writes into a buffer the caller owns (a guest's arena, or a guest's linear memory seen
//! from the host), and [`Codec::decode`] returns a borrowed [`Envelope`] view.
//!
//! Decoding never panics and never reads out of bounds; every rejection has its own
//! [`DecodeError`] variant.
//!
//! # Example
//!
//! ```
//! use membrane_codec::{Codec, CodecConfig, Flags};
//!
//! let codec = Codec::new(CodecConfig::default());
//! let bytes = codec.encode(b"hello", Flags::NONE)?;
//! assert_eq!(bytes.len(), 12 + 5);
//!
//! let envelope = codec.decode(&bytes)?;
//! let mut scratch = Vec::new();
//! assert_eq!(envelope.payload(&mut scratch)?, b"hello");
//!
//! // Typed payloads go through postcard.
//! let bytes = codec.encode_value(&(7u32, "seven"), Flags::NONE)?;
//! let mut scratch = Vec::new();
//! let (n, word): (u32, &str) = codec.decode(&bytes)?.value(&mut scratch)?;
//! assert_eq!((n, word), (7, "seven"));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `std`   | yes     | runtime CPU detection for the hardware CRC-32 (without it only the CPU features enabled at compile time are used), and `std` support in the dependencies |

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod checksum;
mod config;
mod decode;
mod encode;
mod error;
mod runs;
mod typed;

pub use checksum::{Checksum, Crc32Fast, copy_and_checksum, envelope_checksum};
pub use config::CodecConfig;
pub use decode::{Envelope, ErrorPayload, parse_error_payload};
pub use encode::{Codec, error_payload_len, max_encoded_len};
pub use error::{DecodeError, EncodeError};
pub use membrane_types::{ErrorCode, Flags, HEADER_LEN, Header};
pub use runs::{Region, ShortRuns, write_run};
pub use typed::{from_payload, to_payload, to_payload_slice};
