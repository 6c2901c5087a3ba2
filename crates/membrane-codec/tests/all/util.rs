//! Helpers shared by the test modules: hex literals and hand-built envelopes.

use membrane_codec::{
    Codec, CodecConfig, Crc32Fast, DecodeError, Envelope, Flags, HEADER_LEN, Header,
    envelope_checksum,
};

/// The bytes of a hex literal; whitespace (including newlines) is ignored.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex digits are ASCII");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex byte {pair:?}"))
        })
        .collect()
}

/// `bytes` as lower-case hex, a space between bytes (the form the golden vectors use).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

/// An envelope built by hand: the given flags and carried payload, `payload_len` set to
/// the payload's length and a *valid* checksum (computed with
/// [`membrane_codec::envelope_checksum`]). Lets a test reach the checks that come after
/// the checksum with contents the encoder would never write.
pub(crate) fn forge(flags: Flags, carried: &[u8]) -> Vec<u8> {
    let len = u32::try_from(carried.len()).expect("test payloads are small");
    let mut header = Header::new(flags, len, 0);
    header.checksum = envelope_checksum(&Crc32Fast, &header, carried);
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(carried);
    bytes
}

/// Recomputes the checksum of a (possibly tampered) envelope over its raw header bytes
/// 0–7 and everything after the header, so that only the check under test can object.
pub(crate) fn reseal(bytes: &mut [u8]) {
    use membrane_codec::Checksum;
    let crc = Crc32Fast.update(0, &bytes[..8]);
    let crc = Crc32Fast.update(crc, &bytes[HEADER_LEN..]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Runs everything a receiver does with an envelope and returns the first error:
/// decode (header, length, checksum, flags), access to the payload (decompressing it)
/// and, for an error envelope, parsing the code and message.
pub(crate) fn receive(codec: &Codec, bytes: &[u8]) -> Result<(), DecodeError> {
    use_envelope(codec.decode(bytes)?)
}

/// [`receive`] with [`Codec::decode_trusted`]: everything but the checksum.
pub(crate) fn receive_trusted(codec: &Codec, bytes: &[u8]) -> Result<(), DecodeError> {
    use_envelope(codec.decode_trusted(bytes)?)
}

/// What [`receive`] does with a decoded envelope.
fn use_envelope(envelope: Envelope<'_>) -> Result<(), DecodeError> {
    let mut scratch = Vec::new();
    let payload = envelope.payload(&mut scratch)?.to_vec();
    let mut out = vec![0; envelope.payload_len()];
    assert_eq!(envelope.decompress_into(&mut out)?, payload.len());
    assert_eq!(out, payload, "payload() and decompress_into() disagree");
    if let Some(error) = envelope.error(&mut scratch) {
        error?;
    }
    Ok(())
}

/// A codec with a small decompression limit, used by the rejection and fuzz-like tests.
pub(crate) const SMALL_MAX: usize = 1024;

/// The codec used to receive in the rejection tests: never compresses, refuses
/// payloads declaring more than [`SMALL_MAX`] bytes uncompressed.
pub(crate) fn small_codec() -> Codec {
    Codec::new(CodecConfig {
        compress_threshold: None,
        max_decompressed_len: SMALL_MAX,
    })
}

/// Deterministic pseudo-random bytes (xorshift64*): incompressible test data without a
/// dependency on `rand`.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Compressible test data: a short sentence repeated.
pub(crate) fn text(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}
