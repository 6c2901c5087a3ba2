//! The codec's error types.

use core::fmt;
use membrane_types::{HEADER_LEN, HeaderError};

/// Why an envelope was rejected on decode. Each rejection of `docs/wire-format.md` has
/// its own variant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer than 12 bytes.
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
    /// The first two bytes are not `0x41 0x49`.
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The version byte is not 1.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A reserved flag bit (4–7) is set.
    ReservedFlags {
        /// The flag byte found.
        bits: u8,
    },
    /// `payload_len` does not match the number of bytes after the header (trailing
    /// bytes included).
    LengthMismatch {
        /// The payload length the header declares.
        declared: u32,
        /// The bytes actually present after the header.
        available: usize,
    },
    /// The checksum does not match header bytes 0–7 and the payload.
    ChecksumMismatch {
        /// The checksum the header carries.
        carried: u32,
        /// The checksum computed over the bytes received.
        computed: u32,
    },
    /// The `ENCRYPTED` flag is set; wire version 1 defines no encryption.
    Encrypted,
    /// A compressed payload is not a valid size-prepended LZ4 block, or it does not
    /// decompress to exactly the size it declares.
    BadCompressedBlock,
    /// A compressed payload declares an uncompressed size above the configured maximum.
    DecompressedTooLarge {
        /// The uncompressed size declared.
        declared: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The caller's buffer is too small for the decompressed payload.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// An error payload shorter than its 4-byte code, or whose message is not UTF-8.
    MalformedErrorPayload,
    /// The payload does not deserialize into the requested type.
    Deserialize {
        /// What postcard reported.
        reason: &'static str,
    },
    /// The payload deserialized but bytes were left over.
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
}

impl From<HeaderError> for DecodeError {
    fn from(e: HeaderError) -> DecodeError {
        match e {
            HeaderError::TooShort { len } => DecodeError::TooShort { len },
            HeaderError::BadMagic { found } => DecodeError::BadMagic { found },
            HeaderError::UnsupportedVersion { found } => DecodeError::UnsupportedVersion { found },
            HeaderError::ReservedFlags { bits } => DecodeError::ReservedFlags { bits },
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::TooShort { len } => {
                write!(
                    f,
                    "envelope too short: {len} bytes, the header alone is {HEADER_LEN}"
                )
            }
            DecodeError::BadMagic { found } => write!(
                f,
                "bad envelope magic {:#04x} {:#04x}, expected 0x41 0x49",
                found[0], found[1]
            ),
            DecodeError::UnsupportedVersion { found } => {
                write!(f, "unsupported wire-format version {found}, expected 1")
            }
            DecodeError::ReservedFlags { bits } => {
                write!(f, "reserved flag bits set in flag byte {bits:#010b}")
            }
            DecodeError::LengthMismatch {
                declared,
                available,
            } => write!(
                f,
                "payload length mismatch: header declares {declared} bytes, {available} follow it"
            ),
            DecodeError::ChecksumMismatch { carried, computed } => write!(
                f,
                "checksum mismatch: envelope carries {carried:#010x}, its bytes give {computed:#010x}"
            ),
            DecodeError::Encrypted => {
                f.write_str("encrypted envelopes are not supported in wire-format version 1")
            }
            DecodeError::BadCompressedBlock => {
                f.write_str("invalid lz4 block in compressed payload")
            }
            DecodeError::DecompressedTooLarge { declared, max } => write!(
                f,
                "compressed payload declares {declared} bytes uncompressed, more than the maximum of {max}"
            ),
            DecodeError::BufferTooSmall { needed, available } => write!(
                f,
                "buffer too small for the payload: {needed} bytes needed, {available} available"
            ),
            DecodeError::MalformedErrorPayload => {
                f.write_str("malformed error payload: expected a u32 code then a utf-8 message")
            }
            DecodeError::Deserialize { reason } => {
                write!(f, "payload does not deserialize: {reason}")
            }
            DecodeError::TrailingBytes { count } => {
                write!(f, "payload has {count} trailing bytes after the value")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why an envelope could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The payload is longer than `u32::MAX` bytes, the most a header can declare.
    PayloadTooLarge {
        /// The payload length.
        len: usize,
    },
    /// The value could not be serialized.
    Serialize {
        /// What postcard reported.
        reason: &'static str,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::BufferTooSmall { needed, available } => write!(
                f,
                "buffer too small for the envelope: {needed} bytes needed, {available} available"
            ),
            EncodeError::PayloadTooLarge { len } => {
                write!(
                    f,
                    "payload of {len} bytes is longer than an envelope can carry (u32::MAX)"
                )
            }
            EncodeError::Serialize { reason } => write!(f, "value does not serialize: {reason}"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// A short, static description of a postcard error.
pub(crate) fn postcard_reason(e: &postcard::Error) -> &'static str {
    use postcard::Error as P;
    match e {
        P::WontImplement => "the format does not support this type",
        P::NotYetImplemented => "the format does not yet support this type",
        P::SerializeBufferFull => "the serialization buffer is full",
        P::SerializeSeqLengthUnknown => "sequence length unknown",
        P::DeserializeUnexpectedEnd => "unexpected end of payload",
        P::DeserializeBadVarint => "bad varint",
        P::DeserializeBadBool => "bad bool",
        P::DeserializeBadChar => "bad char",
        P::DeserializeBadUtf8 => "bad utf-8 in a string",
        P::DeserializeBadOption => "bad option tag",
        P::DeserializeBadEnum => "bad enum discriminant",
        P::DeserializeBadEncoding => "bad encoding",
        P::DeserializeBadCrc => "bad crc",
        P::SerdeSerCustom => "serialize error reported by the type",
        P::SerdeDeCustom => "invalid value for the type",
        P::CollectStrError => "collect_str failed",
        _ => "malformed payload",
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    /// Messages follow the project style: lower case, no trailing period.
    #[test]
    fn messages_are_lower_case_without_a_trailing_period() {
        let decode = [
            DecodeError::TooShort { len: 3 },
            DecodeError::BadMagic { found: [0, 1] },
            DecodeError::UnsupportedVersion { found: 2 },
            DecodeError::ReservedFlags { bits: 0x10 },
            DecodeError::LengthMismatch {
                declared: 5,
                available: 4,
            },
            DecodeError::ChecksumMismatch {
                carried: 1,
                computed: 2,
            },
            DecodeError::Encrypted,
            DecodeError::BadCompressedBlock,
            DecodeError::DecompressedTooLarge {
                declared: 10,
                max: 5,
            },
            DecodeError::BufferTooSmall {
                needed: 5,
                available: 4,
            },
            DecodeError::MalformedErrorPayload,
            DecodeError::Deserialize { reason: "bad bool" },
            DecodeError::TrailingBytes { count: 1 },
        ];
        let encode = [
            EncodeError::BufferTooSmall {
                needed: 5,
                available: 4,
            },
            EncodeError::PayloadTooLarge { len: usize::MAX },
            EncodeError::Serialize { reason: "x" },
        ];
        let messages = decode
            .iter()
            .map(ToString::to_string)
            .chain(encode.iter().map(ToString::to_string));
        for message in messages {
            let first = message.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn header_errors_map_to_their_own_variants() {
        let cases = [
            (
                HeaderError::TooShort { len: 1 },
                DecodeError::TooShort { len: 1 },
            ),
            (
                HeaderError::BadMagic { found: [1, 2] },
                DecodeError::BadMagic { found: [1, 2] },
            ),
            (
                HeaderError::UnsupportedVersion { found: 3 },
                DecodeError::UnsupportedVersion { found: 3 },
            ),
            (
                HeaderError::ReservedFlags { bits: 0x80 },
                DecodeError::ReservedFlags { bits: 0x80 },
            ),
        ];
        for (header, decode) in cases {
            assert_eq!(DecodeError::from(header), decode);
        }
    }
}
