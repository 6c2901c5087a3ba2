//! Encoding envelopes: into a caller's buffer or a new `Vec`.

use alloc::vec::Vec;
use membrane_types::{ErrorCode, Flags, HEADER_LEN, Header};
use serde::Serialize;

use crate::checksum::{Checksum, Crc32Fast, copy_and_checksum, envelope_checksum};
use crate::config::CodecConfig;
use crate::decode::{Envelope, decode_trusted_with, decode_with};
use crate::error::{DecodeError, EncodeError};

/// Length of the size prefix of a compressed payload.
pub(crate) const SIZE_PREFIX_LEN: usize = 4;

/// The most bytes an envelope carrying `payload_len` payload bytes can take:
/// `12 + payload_len`. Compression is kept only when it makes the payload smaller, so
/// no envelope is ever longer than this.
#[inline]
pub const fn max_encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// Length of the payload of an error envelope with this message: 4 + the message length.
#[inline]
pub const fn error_payload_len(message: &str) -> usize {
    4 + message.len()
}

/// Encodes and decodes envelopes under one [`CodecConfig`], with a pluggable
/// [`Checksum`] (default: `crc32fast`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Codec<C = Crc32Fast> {
    config: CodecConfig,
    checksum: C,
}

impl Codec<Crc32Fast> {
    /// A codec using `crc32fast` for checksums.
    #[inline]
    pub const fn new(config: CodecConfig) -> Codec<Crc32Fast> {
        Codec {
            config,
            checksum: Crc32Fast,
        }
    }
}

impl<C: Checksum> Codec<C> {
    /// A codec computing checksums with `checksum`.
    #[inline]
    pub const fn with_checksum(config: CodecConfig, checksum: C) -> Codec<C> {
        Codec { config, checksum }
    }

    /// The codec's settings.
    #[inline]
    pub const fn config(&self) -> &CodecConfig {
        &self.config
    }

    /// The codec's checksum implementation.
    #[inline]
    pub const fn checksum(&self) -> &C {
        &self.checksum
    }

    /// Encodes `payload` with `flags` into the start of `buf` and returns the envelope's
    /// length. `buf` needs [`max_encoded_len`]`(payload.len())` bytes.
    ///
    /// `flags` may carry `EXPECTS_RESPONSE` and `ERROR`; `COMPRESSED` is set or cleared
    /// by the codec according to its config, and `ENCRYPTED` is cleared.
    /// Copying the payload and checksumming it happen in one pass over memory.
    ///
    /// When the payload is compressed and `buf` is longer than the envelope, bytes of
    /// `buf` past the envelope may be used as scratch space and overwritten.
    // Always inlined: without compression this is a few checks, the header and a fused
    // copy and checksum, less than the cost of a call on the path of every host call.
    #[inline(always)]
    pub fn encode_into(
        &self,
        buf: &mut [u8],
        payload: &[u8],
        flags: Flags,
    ) -> Result<usize, EncodeError> {
        let n = payload.len();
        let payload_len = u32::try_from(n).map_err(|_| EncodeError::PayloadTooLarge { len: n })?;
        let needed = max_encoded_len(n);
        if buf.len() < needed {
            return Err(EncodeError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let flags = flags.without(Flags::COMPRESSED).without(Flags::ENCRYPTED);
        if let Some(len) = self.try_compress_into(buf, payload, flags) {
            return Ok(len);
        }
        let mut header = Header::new(flags, payload_len, 0);
        let (head, body) = buf.split_at_mut(HEADER_LEN);
        let crc = self.checksum.update(0, &header.checked_prefix());
        header.checksum = copy_and_checksum(&self.checksum, crc, &mut body[..n], payload);
        head.copy_from_slice(&header.to_bytes());
        Ok(needed)
    }

    /// Compresses into `buf` if the config asks for it and the result is smaller;
    /// returns the envelope length, or `None` to store the payload as it is.
    ///
    /// lz4_flex refuses (`OutputTooSmall`) any output slice shorter than its worst case,
    /// `get_maximum_output_size(n)`, which is larger than `n`. When `buf` has that much
    /// room the block is written in place; otherwise it goes through a temporary vector
    /// and is copied in only if it is smaller than the payload.
    #[inline]
    fn try_compress_into(&self, buf: &mut [u8], payload: &[u8], flags: Flags) -> Option<usize> {
        let threshold = self.config.compress_threshold?;
        let n = payload.len();
        if n <= threshold || n <= SIZE_PREFIX_LEN {
            return None;
        }
        self.compress_into(buf, payload, flags)
    }

    /// [`Codec::try_compress_into`] once the payload is long enough to try: out of line,
    /// so that encoding without compression stays short enough to inline.
    #[inline(never)]
    fn compress_into(&self, buf: &mut [u8], payload: &[u8], flags: Flags) -> Option<usize> {
        let n = payload.len();
        let uncompressed = u32::try_from(n).ok()?;
        let worst = lz4_flex::block::get_maximum_output_size(n);
        let body = &mut buf[HEADER_LEN..];
        let block_len = if body.len() - SIZE_PREFIX_LEN >= worst {
            let block_len = lz4_flex::block::compress_into(
                payload,
                &mut body[SIZE_PREFIX_LEN..SIZE_PREFIX_LEN + worst],
            )
            .ok()?;
            if SIZE_PREFIX_LEN + block_len >= n {
                return None;
            }
            block_len
        } else {
            let mut block = alloc::vec![0; worst];
            let block_len = lz4_flex::block::compress_into(payload, &mut block).ok()?;
            if SIZE_PREFIX_LEN + block_len >= n {
                return None;
            }
            body[SIZE_PREFIX_LEN..SIZE_PREFIX_LEN + block_len].copy_from_slice(&block[..block_len]);
            block_len
        };
        body[..SIZE_PREFIX_LEN].copy_from_slice(&uncompressed.to_le_bytes());
        let carried = SIZE_PREFIX_LEN + block_len;
        let mut header = Header::new(flags.with(Flags::COMPRESSED), carried as u32, 0);
        header.checksum = envelope_checksum(&self.checksum, &header, &body[..carried]);
        buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        Some(HEADER_LEN + carried)
    }

    /// Encodes `payload` with `flags` into a new vector.
    pub fn encode(&self, payload: &[u8], flags: Flags) -> Result<Vec<u8>, EncodeError> {
        let mut buf = alloc::vec![0; max_encoded_len(payload.len())];
        let len = self.encode_into(&mut buf, payload, flags)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Serializes `value` with postcard and encodes it into a new vector.
    pub fn encode_value<T: Serialize + ?Sized>(
        &self,
        value: &T,
        flags: Flags,
    ) -> Result<Vec<u8>, EncodeError> {
        let payload = crate::typed::to_payload(value)?;
        self.encode(&payload, flags)
    }

    /// Encodes an error envelope (flag `ERROR`, never compressed) carrying `code` and
    /// `message` into the start of `buf`; returns its length,
    /// `12 + `[`error_payload_len`]`(message)`.
    pub fn encode_error_into(
        &self,
        buf: &mut [u8],
        code: ErrorCode,
        message: &str,
    ) -> Result<usize, EncodeError> {
        let payload_len = error_payload_len(message);
        let len32 = u32::try_from(payload_len)
            .map_err(|_| EncodeError::PayloadTooLarge { len: payload_len })?;
        let needed = max_encoded_len(payload_len);
        if buf.len() < needed {
            return Err(EncodeError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let mut header = Header::new(Flags::ERROR, len32, 0);
        let body = &mut buf[HEADER_LEN..needed];
        body[..4].copy_from_slice(&code.0.to_le_bytes());
        body[4..].copy_from_slice(message.as_bytes());
        header.checksum = envelope_checksum(&self.checksum, &header, body);
        buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        Ok(needed)
    }

    /// Encodes an error envelope into a new vector.
    pub fn encode_error(&self, code: ErrorCode, message: &str) -> Result<Vec<u8>, EncodeError> {
        let mut buf = alloc::vec![0; max_encoded_len(error_payload_len(message))];
        self.encode_error_into(&mut buf, code, message)?;
        Ok(buf)
    }

    /// Checks `bytes` as one whole envelope (header, length, checksum, flags) and returns
    /// a view borrowing them. See [`Envelope`].
    #[inline]
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        decode_with(&self.checksum, &self.config, bytes)
    }

    /// Checks `bytes` as one whole envelope like [`Codec::decode`] in every respect but
    /// one: the checksum is neither computed nor compared. Magic, version, flags,
    /// lengths and the declared uncompressed size are checked as `decode` checks them,
    /// in the same order and with the same errors, and the view is the same
    /// [`Envelope`]. Like `decode` it never panics and never reads out of bounds, and
    /// accessing the payload (decompressing, parsing an error, deserializing) checks
    /// what it always checks.
    ///
    /// Right only for bytes that a trusted party wrote for this very exchange, into
    /// memory no one else could have changed since: a membrane guest reading the input
    /// envelope its host wrote into the guest's memory for the call in progress, or the
    /// response to a host function it is calling (`docs/abi.md` §5). There a checksum
    /// could only catch the writer's own mistakes, which the writer is better placed to
    /// check. Bytes from anywhere else (a file, a socket, a cache, another process,
    /// a party that is not trusted, or an envelope kept from an earlier exchange) go
    /// through [`Codec::decode`]: the checksum is what catches damage on the way.
    #[inline]
    pub fn decode_trusted<'a>(&self, bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        decode_trusted_with(&self.config, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: lz4_flex refuses any output slice shorter than its worst case, so
    /// offering it only `n - 5` bytes of the caller's buffer meant nothing was ever
    /// compressed.
    #[test]
    fn compresses_into_an_exact_size_buffer() {
        let codec = Codec::new(CodecConfig::compressing(0));
        let payload = [b'a'; 1000];
        let mut buf = alloc::vec![0; max_encoded_len(payload.len())];
        let len = codec.encode_into(&mut buf, &payload, Flags::NONE).unwrap();
        assert!(len < 100, "{len} bytes: not compressed");
        assert_eq!(buf[3], Flags::COMPRESSED.bits());
    }
}
