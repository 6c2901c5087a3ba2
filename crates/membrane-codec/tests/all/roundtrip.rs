//! Round trips through the codec's buffers and settings, and the docs kept in step.

use membrane_codec::{
    Codec, CodecConfig, ErrorCode, Flags, HEADER_LEN, error_payload_len, max_encoded_len,
};
use serde::{Deserialize, Serialize};

use crate::util::{noise, text, to_hex};

/// Encodes `payload` into a buffer of `max_encoded_len + extra` bytes filled with `0xaa`,
/// and returns the buffer and the envelope length.
fn encode_padded(codec: &Codec, payload: &[u8], flags: Flags, extra: usize) -> (Vec<u8>, usize) {
    let mut buf = vec![0xaa; max_encoded_len(payload.len()) + extra];
    let len = codec.encode_into(&mut buf, payload, flags).unwrap();
    (buf, len)
}

#[test]
fn encode_into_an_exact_size_buffer() {
    let codec = Codec::new(CodecConfig::default());
    for payload in [&b""[..], b"x", &text(1000)] {
        let (buf, len) = encode_padded(&codec, payload, Flags::NONE, 0);
        assert_eq!(len, buf.len());
        let mut scratch = Vec::new();
        assert_eq!(
            codec.decode(&buf).unwrap().payload(&mut scratch).unwrap(),
            payload
        );
    }
}

#[test]
fn encode_into_a_larger_buffer_leaves_the_rest_alone() {
    let codec = Codec::new(CodecConfig::default());
    let payload = text(100);
    let (buf, len) = encode_padded(&codec, &payload, Flags::EXPECTS_RESPONSE, 64);
    assert_eq!(len, HEADER_LEN + 100);
    assert!(
        buf[len..].iter().all(|&b| b == 0xaa),
        "bytes past the envelope were written"
    );
    assert_eq!(
        buf[..len],
        codec.encode(&payload, Flags::EXPECTS_RESPONSE).unwrap()[..]
    );
    let envelope = codec.decode(&buf[..len]).unwrap();
    assert_eq!(envelope.uncompressed_payload(), Some(&payload[..]));
}

#[test]
fn compressing_into_exact_and_roomy_buffers_gives_the_same_bytes() {
    // The encoder compresses in place when the buffer has room for lz4's worst case,
    // and through a temporary buffer otherwise; the envelope must not depend on it.
    let codec = Codec::new(CodecConfig::compressing(16));
    for len in [17, 100, 4096, 70_000] {
        let payload: Vec<u8> = b"ab".iter().copied().cycle().take(len).collect();
        let (exact, exact_len) = encode_padded(&codec, &payload, Flags::NONE, 0);
        let (roomy, roomy_len) = encode_padded(&codec, &payload, Flags::NONE, len / 5 + 64);
        assert_eq!(exact[..exact_len], roomy[..roomy_len], "{len} bytes");
        assert_eq!(exact[3], Flags::COMPRESSED.bits(), "{len} bytes");
        let mut scratch = Vec::new();
        let envelope = codec.decode(&exact[..exact_len]).unwrap();
        assert_eq!(envelope.payload(&mut scratch).unwrap(), &payload[..]);
    }
}

#[test]
fn compression_is_kept_only_when_smaller() {
    let codec = Codec::new(CodecConfig::compressing(64));
    let mut scratch = Vec::new();
    // Incompressible data above the threshold is stored as it is.
    for len in [65, 1000, 100_000] {
        let payload = noise(len, len as u64);
        let bytes = codec.encode(&payload, Flags::NONE).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + len);
        let envelope = codec.decode(&bytes).unwrap();
        assert!(
            !envelope.flags().contains(Flags::COMPRESSED),
            "{len} noise bytes"
        );
        assert_eq!(envelope.payload(&mut scratch).unwrap(), &payload[..]);
    }
    // Compressible data above the threshold is compressed, and is smaller.
    for len in [65, 1000, 100_000] {
        let payload = text(len);
        let bytes = codec.encode(&payload, Flags::NONE).unwrap();
        assert!(bytes.len() < HEADER_LEN + len, "{len} text bytes");
        let envelope = codec.decode(&bytes).unwrap();
        assert!(envelope.is_compressed());
        assert_eq!(envelope.payload_len(), len);
        assert_eq!(envelope.carried().len(), bytes.len() - HEADER_LEN);
        assert_eq!(envelope.uncompressed_payload(), None);
        assert_eq!(envelope.payload(&mut scratch).unwrap(), &payload[..]);
    }
    // Nothing is compressed at or below the threshold, however compressible.
    let bytes = codec.encode(&text(64), Flags::NONE).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 64);
    // Without a threshold nothing is compressed.
    let plain = Codec::new(CodecConfig::default());
    let bytes = plain.encode(&text(100_000), Flags::NONE).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 100_000);
    // A payload no longer than the size prefix never is either.
    let eager = Codec::new(CodecConfig::compressing(0));
    for payload in [&b""[..], b"a", b"aaaa"] {
        let bytes = eager.encode(payload, Flags::NONE).unwrap();
        assert_eq!(bytes[3], 0, "{payload:?}");
    }
}

#[test]
fn the_encoder_sets_compressed_and_clears_encrypted_itself() {
    let codec = Codec::new(CodecConfig::default());
    let asked = Flags::COMPRESSED | Flags::ENCRYPTED | Flags::EXPECTS_RESPONSE;
    let bytes = codec.encode(b"hello", asked).unwrap();
    assert_eq!(
        codec.decode(&bytes).unwrap().flags(),
        Flags::EXPECTS_RESPONSE
    );
}

#[test]
fn payload_clears_a_dirty_scratch_buffer() {
    let codec = Codec::new(CodecConfig::compressing(0));
    let payload = text(500);
    let bytes = codec.encode(&payload, Flags::NONE).unwrap();
    let mut scratch = vec![0xee; 2000];
    assert_eq!(
        codec.decode(&bytes).unwrap().payload(&mut scratch).unwrap(),
        &payload[..]
    );
    assert_eq!(scratch.len(), 500);
}

#[test]
fn error_envelopes_round_trip() {
    let codec = Codec::new(CodecConfig::compressing(0));
    let long = "x".repeat(5000);
    let cases: [(ErrorCode, &str); 5] = [
        (ErrorCode::UNKNOWN, ""),
        (ErrorCode::HOST_FUNCTION_FAILED, "disk on fire"),
        (ErrorCode(1000), "application-defined"),
        (ErrorCode(u32::MAX), "ünïcödé ✓"),
        (ErrorCode::GUEST_ERROR, &long),
    ];
    for (code, message) in cases {
        let mut buf = vec![0; max_encoded_len(error_payload_len(message))];
        let len = codec.encode_error_into(&mut buf, code, message).unwrap();
        assert_eq!(len, buf.len(), "error envelopes are never compressed");
        assert_eq!(codec.encode_error(code, message).unwrap(), buf);
        let envelope = codec.decode(&buf).unwrap();
        assert!(envelope.is_error());
        assert_eq!(envelope.flags(), Flags::ERROR);
        let mut scratch = Vec::new();
        let error = envelope.error(&mut scratch).unwrap().unwrap();
        assert_eq!((error.code, error.message), (code, message));
    }
}

#[test]
fn a_compressed_error_payload_is_decompressed_before_parsing() {
    // The encoder never compresses error envelopes, but a version-1 decoder accepts one.
    let codec = Codec::new(CodecConfig::compressing(0));
    let message = "again and again and again and again and again and again";
    let mut payload = ErrorCode::DENIED.0.to_le_bytes().to_vec();
    payload.extend_from_slice(message.as_bytes());
    let bytes = codec.encode(&payload, Flags::ERROR).unwrap();
    let envelope = codec.decode(&bytes).unwrap();
    assert!(envelope.is_compressed() && envelope.is_error());
    let mut scratch = Vec::new();
    let error = envelope.error(&mut scratch).unwrap().unwrap();
    assert_eq!((error.code, error.message), (ErrorCode::DENIED, message));
}

/// A message with borrowed fields, as a guest function's input typically is.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Request<'a> {
    id: u64,
    name: &'a str,
    tags: Vec<&'a str>,
    #[serde(with = "serde_bytes_like")]
    data: &'a [u8],
    limit: Option<u32>,
}

/// `&[u8]` as a postcard byte string (serde's default for `&[u8]` is a sequence, which
/// cannot be borrowed).
mod serde_bytes_like {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8]>::deserialize(d)
    }
}

#[test]
fn typed_values_borrow_from_the_envelope() {
    let data = text(300);
    let request = Request {
        id: 42,
        name: "fetch",
        tags: vec!["a", "bb", ""],
        data: &data,
        limit: Some(10),
    };
    for config in [CodecConfig::default(), CodecConfig::compressing(32)] {
        let codec = Codec::new(config);
        let bytes = codec
            .encode_value(&request, Flags::EXPECTS_RESPONSE)
            .unwrap();
        let envelope = codec.decode(&bytes).unwrap();
        assert_eq!(
            envelope.is_compressed(),
            config.compress_threshold.is_some()
        );
        let mut scratch = Vec::new();
        let back: Request<'_> = envelope.value(&mut scratch).unwrap();
        assert_eq!(back, request);
    }
    // Uncompressed, the borrowed fields point into the envelope itself: no copy.
    let codec = Codec::new(CodecConfig::default());
    let bytes = codec.encode_value(&request, Flags::NONE).unwrap();
    let mut scratch = Vec::new();
    let back: Request<'_> = codec.decode(&bytes).unwrap().value(&mut scratch).unwrap();
    assert!(bytes.as_ptr_range().contains(&back.name.as_ptr()));
    assert!(scratch.is_empty());
}

#[test]
fn typed_helpers_match_encode_value() {
    let value = (1u8, "two", [3u16; 3]);
    let payload = membrane_codec::to_payload(&value).unwrap();
    let mut buf = [0; 64];
    let written = membrane_codec::to_payload_slice(&value, &mut buf).unwrap();
    assert_eq!(written, &payload[..]);
    let back: (u8, &str, [u16; 3]) = membrane_codec::from_payload(&payload).unwrap();
    assert_eq!(back, value);
    let codec = Codec::new(CodecConfig::default());
    assert_eq!(
        codec.encode_value(&value, Flags::NONE).unwrap(),
        codec.encode(&payload, Flags::NONE).unwrap()
    );
    // A payload too large for the slice is a serialize error, not a panic.
    assert!(membrane_codec::to_payload_slice(&value, &mut [0; 3]).is_err());
}

#[test]
fn codec_reports_its_config() {
    let config = CodecConfig {
        compress_threshold: Some(7),
        max_decompressed_len: 99,
    };
    assert_eq!(*Codec::new(config).config(), config);
    assert_eq!(CodecConfig::default().compress_threshold, None);
    assert_eq!(
        CodecConfig::default().max_decompressed_len,
        CodecConfig::DEFAULT_MAX_DECOMPRESSED_LEN
    );
}

/// `docs/wire-format.md` is normative: it must carry the golden vectors the tests check
/// and name every reserved error code.
#[test]
fn the_wire_format_doc_is_in_step() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/wire-format.md");
    let doc = std::fs::read_to_string(path).expect("docs/wire-format.md exists");
    let doc_words = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    for v in crate::golden::vectors() {
        let hex = to_hex(&crate::util::hex(v.hex));
        assert!(
            doc_words.contains(&hex),
            "vector {:?} ({hex}) is not in the doc",
            v.name
        );
    }
    for code in 0..ErrorCode::APPLICATION_MIN.0 {
        if let Some(name) = ErrorCode(code).name() {
            assert!(
                doc.contains(&format!("| {code} | `{name}` |")),
                "error code {code} {name} is not in the doc's table"
            );
        }
    }
}
