//! The envelope-level call protocol of `docs/abi.md`, over bytes of guest memory.
//!
//! An executor runs the guest and finds the regions the ABI names (an input region from
//! the guest's allocation entry, the output a guest function returns, a host function's
//! request and response buffer); these functions write and read the envelopes in them:
//!
//! - a call: [`input_envelope_len`] and [`write_input`] for the input, then
//!   [`read_in_place`] or [`read_to_vec`] for the output (verified; an error envelope
//!   becomes [`ErrorKind::Guest`]);
//! - a host function: [`read_request`] for its request, then one of
//!   [`write_value_response`] (into the guest's buffer, in one pass when it fits),
//!   [`value_payload_len`] + [`write_value_into`], [`write_bytes_response`] or
//!   [`write_error_response`] for its response, sized by [`response_len`] or
//!   [`error_response_len`].
//!
//! - a lifecycle hook that failed: [`hook_error`] for the error envelope it points to.
//!
//! Every envelope read here is verified (checksum, flags, lengths); a bad one is an
//! ABI violation ([`AbiViolation::BadEnvelope`](crate::AbiViolation::BadEnvelope)).

use membrane_codec::{
    Codec, CodecConfig, Crc32Fast, DecodeError, EncodeError, Flags, HEADER_LEN, Header, ShortRuns,
    envelope_checksum, max_encoded_len,
};
use serde::Serialize;

use crate::error::{Error, ErrorKind, HostError, Result};

/// The size of the region an input envelope of `input_len` payload bytes is written
/// into ([`write_input`]): enough for it compressed or not.
#[inline]
pub fn input_envelope_len(input_len: usize) -> Result<u32> {
    u32::try_from(max_encoded_len(input_len)).map_err(|_| input_too_large(input_len))
}

#[cold]
fn input_too_large(len: usize) -> Error {
    ErrorKind::Serialize(EncodeError::PayloadTooLarge { len }).into()
}

/// Writes the input envelope of `input` into `region` (at least
/// [`input_envelope_len`] bytes): copied and checksummed once, compressed if `codec`
/// says so. Returns the envelope's length.
#[inline]
pub fn write_input(codec: &Codec, region: &mut [u8], input: &[u8]) -> Result<u32> {
    match codec.encode_into(region, input, Flags::NONE) {
        // At most `region.len()`, which the caller sized with a u32.
        Ok(written) => Ok(written as u32),
        Err(e) => Err(ErrorKind::Serialize(e).into()),
    }
}

/// Reads an output envelope in place: the payload is borrowed from guest memory (or
/// decompressed into a scratch buffer) and handed to `read`.
pub fn read_in_place<R>(codec: &Codec, bytes: &[u8], read: impl FnOnce(&[u8]) -> R) -> Result<R> {
    let envelope = codec
        .decode(bytes)
        .map_err(|e| Error::bad_envelope("output envelope", e))?;
    let mut scratch = Vec::new();
    if envelope.is_error() {
        return Err(guest_error(envelope.payload(&mut scratch)));
    }
    let payload = envelope
        .payload(&mut scratch)
        .map_err(|e| Error::bad_envelope("output envelope", e))?;
    Ok(read(payload))
}

/// Copies an output envelope's payload out of guest memory, verifying the checksum in
/// the same pass.
#[inline]
pub fn read_to_vec(codec: &Codec, bytes: &[u8]) -> Result<Vec<u8>> {
    // Sized for an uncompressed payload up front: one exact allocation, no growth.
    let mut out = Vec::with_capacity(bytes.len().saturating_sub(HEADER_LEN));
    let flags = codec
        .decode_to_vec(bytes, &mut out)
        .map_err(|e| Error::bad_envelope("output envelope", e))?;
    if flags.contains(Flags::ERROR) {
        return Err(guest_error(Ok(&out)));
    }
    Ok(out)
}

/// The error for an error envelope's payload.
#[cold]
fn guest_error(payload: std::result::Result<&[u8], DecodeError>) -> Error {
    match payload.and_then(membrane_codec::parse_error_payload) {
        Ok(error) => ErrorKind::Guest {
            code: error.code,
            message: error.message.to_string(),
        }
        .into(),
        Err(e) => Error::bad_envelope("error envelope", e),
    }
}

/// The error a lifecycle hook (`docs/abi.md` §8) reports by returning the location of
/// `bytes` instead of 0: verified like any output envelope, an error envelope is the
/// guest's error ([`ErrorKind::Guest`]); any other envelope, valid or not, is an ABI
/// violation ([`AbiViolation::HookResult`](crate::AbiViolation::HookResult),
/// [`AbiViolation::BadEnvelope`](crate::AbiViolation::BadEnvelope)). `hook` is the
/// hook's export name.
#[cold]
pub fn hook_error(codec: &Codec, bytes: &[u8], hook: &'static str) -> Error {
    let envelope = match codec.decode(bytes) {
        Ok(envelope) => envelope,
        Err(e) => return Error::bad_envelope("lifecycle hook error envelope", e),
    };
    if !envelope.is_error() {
        return Error::abi(crate::AbiViolation::HookResult { hook });
    }
    let mut scratch = Vec::new();
    guest_error(envelope.payload(&mut scratch))
}

/// Verifies a host function's request envelope (`bytes`, the request region) and hands
/// its payload to `read`, decompressed into a scratch buffer if the guest compressed
/// it. Returns what `read` made of it and the number of bytes decompressed (0 for an
/// uncompressed payload), for the executor to charge. A bad envelope (a wrong checksum,
/// a corrupt compressed block) is an ABI violation; what `read` makes of the payload is
/// the host function's business.
#[inline]
pub fn read_request<R>(
    codec: &Codec,
    bytes: &[u8],
    read: impl FnOnce(&[u8]) -> R,
) -> Result<(R, u32)> {
    let envelope = codec
        .decode(bytes)
        .map_err(|e| Error::bad_envelope("host function request", e))?;
    if let Some(payload) = envelope.uncompressed_payload() {
        return Ok((read(payload), 0));
    }
    let decompressed = u32::try_from(envelope.payload_len()).unwrap_or(u32::MAX);
    let mut scratch = Vec::new();
    let payload = envelope
        .payload(&mut scratch)
        .map_err(|e| Error::bad_envelope("host function request", e))?;
    Ok((read(payload), decompressed))
}

/// The length of a response envelope carrying `payload_len` bytes.
#[inline]
pub fn response_len(payload_len: usize) -> Result<u32> {
    u32::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(HEADER_LEN as u32))
        .ok_or_else(|| Error::host("host function output is larger than an envelope can carry"))
}

/// Writes a response envelope carrying `bytes` into `region` (of
/// [`response_len`]`(bytes.len())` bytes): copied and checksummed in one pass, never
/// compressed.
#[inline]
pub fn write_bytes_response(region: &mut [u8], bytes: &[u8]) -> Result<()> {
    match Codec::new(CodecConfig {
        compress_threshold: None,
        ..CodecConfig::default()
    })
    .encode_into(region, bytes, Flags::NONE)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::host(format_args!(
            "cannot encode host function output: {e}"
        ))),
    }
}

/// Serializes `value` (postcard) as a response envelope into `region` (the guest's
/// response buffer) in one pass, if it fits: `Ok(Some(len))` with the envelope's
/// length, `Ok(None)` when it does not fit (size it with [`value_payload_len`] and
/// write it with [`write_value_into`] elsewhere), `Err` when `value` does not
/// serialize (send that error to the guest with [`write_error_response`]).
#[inline]
pub fn write_value_response<O: Serialize + ?Sized>(
    region: &mut [u8],
    value: &O,
) -> std::result::Result<Option<u32>, HostError> {
    let Some((head, body)) = region.split_at_mut_checked(HEADER_LEN) else {
        return Ok(None);
    };
    match postcard::serialize_with_flavor(value, ShortRuns::new(body)) {
        Ok(n) => {
            finish_header(head, &body[..n]);
            // At most `region.len()`, a region of guest memory (addressed with a u32).
            Ok(Some((HEADER_LEN + n) as u32))
        }
        Err(postcard::Error::SerializeBufferFull) => Ok(None),
        Err(e) => Err(serialize_failed(e)),
    }
}

/// The payload length of `value`'s response envelope (postcard); `Err` when it does
/// not serialize (send that error to the guest with [`write_error_response`]).
pub fn value_payload_len<O: Serialize + ?Sized>(
    value: &O,
) -> std::result::Result<usize, HostError> {
    postcard::experimental::serialized_size(value).map_err(serialize_failed)
}

/// Serializes `value` as a response envelope filling `region` exactly
/// ([`response_len`] of [`value_payload_len`]): the payload first, then the header
/// with its checksum.
pub fn write_value_into<O: Serialize + ?Sized>(region: &mut [u8], value: &O) -> Result<()> {
    let Some((head, body)) = region.split_at_mut_checked(HEADER_LEN) else {
        return Err(Error::host(
            "response region smaller than an envelope header",
        ));
    };
    postcard::to_slice(value, body)
        .map_err(|e| Error::host(format_args!("host function output does not serialize: {e}")))?;
    finish_header(head, body);
    Ok(())
}

/// The length of the error envelope that carries `e` to the guest.
pub fn error_response_len(e: &HostError) -> Result<u32> {
    u32::try_from(HEADER_LEN + membrane_codec::error_payload_len(&e.message))
        .map_err(|_| Error::host("host error message too long"))
}

/// Writes the error envelope carrying `e` into `region` (of [`error_response_len`]
/// bytes).
pub fn write_error_response(region: &mut [u8], e: &HostError) -> Result<()> {
    match Codec::new(CodecConfig::default()).encode_error_into(region, e.code, &e.message) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::host(format_args!("cannot encode host error: {e}"))),
    }
}

/// The error envelope sent for a host function output that does not serialize.
#[cold]
fn serialize_failed(e: postcard::Error) -> HostError {
    HostError::new(
        membrane_codec::ErrorCode::ENCODE_FAILED,
        format!("host function output does not serialize: {e}"),
    )
}

/// Writes the header of a successful response carrying `body` into `head`.
#[inline]
fn finish_header(head: &mut [u8], body: &[u8]) {
    // `body` is at most a guest memory region, which wasm32 addresses with a u32.
    let mut header = Header::new(Flags::NONE, body.len() as u32, 0);
    header.checksum = envelope_checksum(&Crc32Fast, &header, body);
    head.copy_from_slice(&header.to_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_codec::ErrorCode;

    fn codec() -> Codec {
        Codec::new(CodecConfig::default())
    }

    /// An input written into a region reads back, in place and copied.
    #[test]
    fn input_round_trips_in_place_and_copied() {
        for len in [0usize, 1, 63, 64, 1024] {
            let input: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut region = vec![0u8; input_envelope_len(len).unwrap() as usize];
            let n = write_input(&codec(), &mut region, &input).unwrap() as usize;
            assert_eq!(read_to_vec(&codec(), &region[..n]).unwrap(), input);
            let seen = read_in_place(&codec(), &region[..n], <[u8]>::to_vec).unwrap();
            assert_eq!(seen, input);
            let (seen, decompressed) =
                read_request(&codec(), &region[..n], <[u8]>::to_vec).unwrap();
            assert_eq!((seen, decompressed), (input, 0));
        }
    }

    /// A flipped bit is a bad envelope for every reader; an error envelope is the
    /// guest's error.
    #[test]
    fn bad_and_error_envelopes() {
        let mut region = vec![0u8; 64];
        let n = write_input(&codec(), &mut region, b"hello").unwrap() as usize;
        region[14] ^= 1;
        let bad = |e: Error| {
            matches!(
                e.kind(),
                ErrorKind::Abi(crate::AbiViolation::BadEnvelope { .. })
            )
        };
        assert!(bad(read_to_vec(&codec(), &region[..n]).unwrap_err()));
        assert!(bad(
            read_in_place(&codec(), &region[..n], |_| ()).unwrap_err()
        ));
        assert!(bad(
            read_request(&codec(), &region[..n], |_| ()).unwrap_err()
        ));

        let e = HostError::new(ErrorCode::from(1234), "nope");
        let mut region = vec![0u8; error_response_len(&e).unwrap() as usize];
        write_error_response(&mut region, &e).unwrap();
        for e in [
            read_to_vec(&codec(), &region).unwrap_err(),
            read_in_place(&codec(), &region, |_| ()).unwrap_err(),
        ] {
            assert!(
                matches!(e.kind(), ErrorKind::Guest { code, message } if *code == ErrorCode::from(1234) && message == "nope"),
                "{e}"
            );
        }
    }

    /// A compressed request is decompressed and its size reported for charging.
    #[test]
    fn compressed_request_reports_its_size() {
        let compressing = Codec::new(CodecConfig {
            compress_threshold: Some(0),
            ..CodecConfig::default()
        });
        let input = vec![7u8; 4096];
        let mut region = vec![0u8; input_envelope_len(input.len()).unwrap() as usize];
        let n = write_input(&compressing, &mut region, &input).unwrap() as usize;
        assert!(n < input.len());
        let (seen, decompressed) = read_request(&codec(), &region[..n], <[u8]>::to_vec).unwrap();
        assert_eq!((seen, decompressed), (input, 4096));
    }

    /// Responses written in one pass, sized first, or as bytes are valid envelopes.
    #[test]
    fn responses_read_back() {
        let value = (7u32, "seven".to_string());
        let mut buf = [0u8; 64];
        let n = write_value_response(&mut buf, &value).unwrap().unwrap() as usize;
        let out: (u32, String) =
            membrane_codec::from_payload(&read_to_vec(&codec(), &buf[..n]).unwrap()).unwrap();
        assert_eq!(out, value);
        assert_eq!(write_value_response(&mut buf[..14], &value), Ok(None));
        assert_eq!(write_value_response(&mut buf[..12], &value), Ok(None));
        assert_eq!(write_value_response(&mut buf[..11], &value), Ok(None));
        assert_eq!(write_value_response(&mut [0u8; 12], &()), Ok(Some(12)));

        let total = response_len(value_payload_len(&value).unwrap()).unwrap() as usize;
        assert_eq!(total, n);
        let mut region = vec![0u8; total];
        write_value_into(&mut region, &value).unwrap();
        assert_eq!(&region[..], &buf[..n]);

        let mut region = vec![0u8; response_len(5).unwrap() as usize];
        write_bytes_response(&mut region, b"bytes").unwrap();
        assert_eq!(read_to_vec(&codec(), &region).unwrap(), b"bytes");
    }

    /// A hook's result is an error envelope: anything else is an ABI violation.
    #[test]
    fn hook_errors() {
        let e = HostError::new(ErrorCode::from(1500), "cannot start");
        let mut region = vec![0u8; error_response_len(&e).unwrap() as usize];
        write_error_response(&mut region, &e).unwrap();
        let e = hook_error(&codec(), &region, "__membrane_start");
        assert!(
            matches!(e.kind(), ErrorKind::Guest { code, message } if *code == ErrorCode::from(1500) && message == "cannot start"),
            "{e}"
        );
        let mut region = vec![0u8; 64];
        let n = write_input(&codec(), &mut region, b"fine").unwrap() as usize;
        let e = hook_error(&codec(), &region[..n], "__membrane_stop");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Abi(crate::AbiViolation::HookResult {
                    hook: "__membrane_stop"
                })
            ),
            "{e}"
        );
        region[n - 1] ^= 1;
        let e = hook_error(&codec(), &region[..n], "__membrane_stop");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Abi(crate::AbiViolation::BadEnvelope { .. })
            ),
            "{e}"
        );
    }
}
