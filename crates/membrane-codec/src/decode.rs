//! Decoding envelopes into borrowed views.

use alloc::vec::Vec;
use membrane_types::{ErrorCode, Flags, HEADER_LEN, Header};
use serde::Deserialize;

use crate::checksum::{Checksum, envelope_checksum};
use crate::config::CodecConfig;
use crate::encode::SIZE_PREFIX_LEN;
use crate::error::DecodeError;

/// A checked envelope borrowing the bytes it was decoded from.
///
/// Obtained from [`Codec::decode`](crate::Codec::decode), which has verified the header,
/// the length and the checksum, or from
/// [`Codec::decode_trusted`](crate::Codec::decode_trusted), which has verified the same
/// except the checksum. For an uncompressed payload, [`Envelope::payload`] hands back the
/// carried bytes without copying; a compressed one is decompressed into a buffer the
/// caller provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    header: Header,
    carried: &'a [u8],
    uncompressed_len: usize,
}

/// Checks 1–9 of the rejection order (`docs/wire-format.md`): what
/// [`Codec::decode`](crate::Codec::decode) checks.
#[inline(always)]
pub(crate) fn decode_with<'a, C: Checksum + ?Sized>(
    c: &C,
    config: &CodecConfig,
    bytes: &'a [u8],
) -> Result<Envelope<'a>, DecodeError> {
    let (header, carried) = frame(bytes)?;
    let computed = envelope_checksum(c, &header, carried);
    if computed != header.checksum {
        return Err(DecodeError::ChecksumMismatch {
            carried: header.checksum,
            computed,
        });
    }
    view(config, header, carried)
}

/// Checks 1–5 and 7–9 of the rejection order, every one but the checksum: what
/// [`Codec::decode_trusted`](crate::Codec::decode_trusted) checks.
#[inline(always)]
pub(crate) fn decode_trusted_with<'a>(
    config: &CodecConfig,
    bytes: &'a [u8],
) -> Result<Envelope<'a>, DecodeError> {
    let (header, carried) = frame(bytes)?;
    view(config, header, carried)
}

/// Checks 1–5: the header (length, magic, version, reserved flags) and that the payload
/// is exactly the rest of `bytes`. Returns the header and the carried payload.
#[inline(always)]
fn frame(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    let header = Header::from_bytes(bytes)?;
    let carried = &bytes[HEADER_LEN..];
    if carried.len() != header.payload_len as usize {
        return Err(DecodeError::LengthMismatch {
            declared: header.payload_len,
            available: carried.len(),
        });
    }
    Ok((header, carried))
}

/// Checks 7–9 (flags a receiver cannot act on, the size prefix of a compressed payload
/// and its declared size) and makes the view.
#[inline(always)]
fn view<'a>(
    config: &CodecConfig,
    header: Header,
    carried: &'a [u8],
) -> Result<Envelope<'a>, DecodeError> {
    if header.flags.contains(Flags::ENCRYPTED) {
        return Err(DecodeError::Encrypted);
    }
    let uncompressed_len = if header.flags.contains(Flags::COMPRESSED) {
        let Some(prefix) = carried.first_chunk::<SIZE_PREFIX_LEN>() else {
            return Err(DecodeError::BadCompressedBlock);
        };
        let declared = u32::from_le_bytes(*prefix) as usize;
        if declared > config.max_decompressed_len {
            return Err(DecodeError::DecompressedTooLarge {
                declared,
                max: config.max_decompressed_len,
            });
        }
        declared
    } else {
        carried.len()
    };
    Ok(Envelope {
        header,
        carried,
        uncompressed_len,
    })
}

impl<'a> Envelope<'a> {
    /// The header.
    #[inline]
    pub const fn header(&self) -> &Header {
        &self.header
    }

    /// The flags.
    #[inline]
    pub const fn flags(&self) -> Flags {
        self.header.flags
    }

    /// Whether this is an error envelope.
    #[inline]
    pub const fn is_error(&self) -> bool {
        self.header.flags.contains(Flags::ERROR)
    }

    /// Whether the payload is compressed.
    #[inline]
    pub const fn is_compressed(&self) -> bool {
        self.header.flags.contains(Flags::COMPRESSED)
    }

    /// The payload bytes as carried (compressed or not).
    #[inline]
    pub const fn carried(&self) -> &'a [u8] {
        self.carried
    }

    /// The payload's length once decompressed (already checked against the configured
    /// maximum).
    #[inline]
    pub const fn payload_len(&self) -> usize {
        self.uncompressed_len
    }

    /// The carried payload if it is not compressed: zero-copy access for the common case.
    #[inline]
    pub const fn uncompressed_payload(&self) -> Option<&'a [u8]> {
        if self.is_compressed() {
            None
        } else {
            Some(self.carried)
        }
    }

    /// The payload: the carried bytes when uncompressed, else decompressed into
    /// `scratch` (cleared first) and borrowed from there.
    pub fn payload<'s>(&self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeError>
    where
        'a: 's,
    {
        if !self.is_compressed() {
            return Ok(self.carried);
        }
        scratch.clear();
        scratch.resize(self.uncompressed_len, 0);
        self.decompress_into(scratch)?;
        Ok(scratch)
    }

    /// Writes the payload, decompressed if needed, into the start of `out` and returns
    /// its length ([`Envelope::payload_len`]).
    pub fn decompress_into(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        let n = self.uncompressed_len;
        if out.len() < n {
            return Err(DecodeError::BufferTooSmall {
                needed: n,
                available: out.len(),
            });
        }
        if !self.is_compressed() {
            out[..n].copy_from_slice(self.carried);
            return Ok(n);
        }
        let block = &self.carried[SIZE_PREFIX_LEN..];
        match lz4_flex::block::decompress_into(block, &mut out[..n]) {
            Ok(written) if written == n => Ok(n),
            _ => Err(DecodeError::BadCompressedBlock),
        }
    }

    /// Deserializes the payload (decompressing into `scratch` if needed) as a `T`,
    /// which may borrow from the payload.
    pub fn value<'s, T: Deserialize<'s>>(&self, scratch: &'s mut Vec<u8>) -> Result<T, DecodeError>
    where
        'a: 's,
    {
        crate::typed::from_payload(self.payload(scratch)?)
    }

    /// The code and message of an error envelope, or `None` if the `ERROR` flag is not set.
    /// A compressed error payload is decompressed into `scratch`.
    pub fn error<'s>(
        &self,
        scratch: &'s mut Vec<u8>,
    ) -> Option<Result<ErrorPayload<'s>, DecodeError>>
    where
        'a: 's,
    {
        if !self.is_error() {
            return None;
        }
        Some(self.payload(scratch).and_then(parse_error_payload))
    }
}

/// The contents of an error envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorPayload<'a> {
    /// The error code.
    pub code: ErrorCode,
    /// The UTF-8 message.
    pub message: &'a str,
}

/// Parses an (uncompressed) error payload: a u32 LE code then a UTF-8 message.
pub fn parse_error_payload(payload: &[u8]) -> Result<ErrorPayload<'_>, DecodeError> {
    let Some((code, message)) = payload.split_first_chunk::<4>() else {
        return Err(DecodeError::MalformedErrorPayload);
    };
    let message = core::str::from_utf8(message).map_err(|_| DecodeError::MalformedErrorPayload)?;
    Ok(ErrorPayload {
        code: ErrorCode(u32::from_le_bytes(*code)),
        message,
    })
}

impl<C: Checksum> crate::Codec<C> {
    /// Checks `bytes` as one whole envelope like [`Codec::decode`](crate::Codec::decode)
    /// and appends its payload (decompressed if needed) to `out`; returns the flags.
    ///
    /// For an uncompressed payload the checksum is verified while copying, chunk by
    /// chunk, so the bytes are read from memory once. On any error `out` is left as it
    /// was.
    #[inline]
    pub fn decode_to_vec(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<Flags, DecodeError> {
        let header = Header::from_bytes(bytes)?;
        if header.flags.contains(Flags::COMPRESSED) || header.flags.contains(Flags::ENCRYPTED) {
            return self.decode_compressed_to_vec(bytes, out);
        }
        let carried = &bytes[HEADER_LEN..];
        if carried.len() != header.payload_len as usize {
            return Err(DecodeError::LengthMismatch {
                declared: header.payload_len,
                available: carried.len(),
            });
        }
        let start = out.len();
        out.reserve(carried.len());
        let mut crc = self.checksum().update(0, &header.checked_prefix());
        for chunk in carried.chunks(crate::checksum::FUSE_CHUNK) {
            crc = self.checksum().update(crc, chunk);
            out.extend_from_slice(chunk);
        }
        if crc != header.checksum {
            out.truncate(start);
            return Err(DecodeError::ChecksumMismatch {
                carried: header.checksum,
                computed: crc,
            });
        }
        Ok(header.flags)
    }

    /// [`Codec::decode_to_vec`] of an envelope flagged compressed or encrypted: out of
    /// line, so that the uncompressed path stays short enough to inline.
    #[inline(never)]
    fn decode_compressed_to_vec(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Flags, DecodeError> {
        let envelope = self.decode(bytes)?;
        let mut scratch = Vec::new();
        out.extend_from_slice(envelope.payload(&mut scratch)?);
        Ok(envelope.flags())
    }
}

#[cfg(test)]
mod fused_tests {
    use crate::{Codec, CodecConfig, DecodeError, Flags};
    use alloc::vec::Vec;

    /// `decode_to_vec` agrees with `decode` + `payload` on good envelopes of every size
    /// around the chunk boundary, and rejects a flipped byte leaving `out` untouched.
    #[test]
    fn decode_to_vec_matches_decode() {
        for config in [CodecConfig::default(), CodecConfig::compressing(0)] {
            let codec = Codec::new(config);
            for n in [0usize, 1, 100, 16 * 1024, 16 * 1024 + 1, 100_000] {
                let payload: Vec<u8> = (0..n).map(|i| (i % 7) as u8).collect();
                let bytes = codec.encode(&payload, Flags::EXPECTS_RESPONSE).unwrap();
                let mut out = alloc::vec![9u8];
                let flags = codec.decode_to_vec(&bytes, &mut out).unwrap();
                assert_eq!(flags, codec.decode(&bytes).unwrap().flags());
                assert_eq!(&out[1..], &payload[..]);
                if n > 0 {
                    let mut bad = bytes.clone();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    let mut out = alloc::vec![9u8];
                    assert!(codec.decode_to_vec(&bad, &mut out).is_err());
                    assert_eq!(out, [9]);
                }
            }
        }
        let codec = Codec::new(CodecConfig::default());
        let mut bytes = codec.encode(b"abc", Flags::NONE).unwrap();
        bytes.push(0);
        assert_eq!(
            codec.decode_to_vec(&bytes, &mut Vec::new()),
            Err(DecodeError::LengthMismatch {
                declared: 3,
                available: 4
            })
        );
    }
}
