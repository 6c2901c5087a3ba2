//! Golden byte vectors: the encoder's output pinned byte for byte, and decoded back.
//!
//! The same vectors are printed in `docs/wire-format.md`; a change here is a change of
//! the wire format and must be made there too.

use membrane_codec::{Checksum, Codec, CodecConfig, ErrorCode, Flags};

use crate::util::{hex, to_hex};

/// What a vector carries.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// Raw payload bytes passed to `encode_into`.
    Payload(&'static [u8]),
    /// An error envelope passed to `encode_error_into`.
    Error(ErrorCode, &'static str),
}

pub(crate) struct Vector {
    pub(crate) name: &'static str,
    config: CodecConfig,
    body: Body,
    /// Flags passed to the encoder.
    flags: Flags,
    /// Flags on the wire.
    wire_flags: Flags,
    pub(crate) hex: &'static str,
}

const COMPRESSIBLE: &[u8] = b"hello hello hello hello hello hello hello hello ";

pub(crate) fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "empty payload",
            config: CodecConfig::default(),
            body: Body::Payload(b""),
            flags: Flags::NONE,
            wire_flags: Flags::NONE,
            hex: "41 49 01 00  00 00 00 00  15 fe da 9a",
        },
        Vector {
            name: "hello",
            config: CodecConfig::default(),
            body: Body::Payload(b"hello"),
            flags: Flags::NONE,
            wire_flags: Flags::NONE,
            hex: "41 49 01 00  05 00 00 00  d9 48 8e b9  68 65 6c 6c 6f",
        },
        Vector {
            name: "compressed",
            config: CodecConfig::compressing(16),
            body: Body::Payload(COMPRESSIBLE),
            flags: Flags::NONE,
            wire_flags: Flags::COMPRESSED,
            hex: "41 49 01 01  15 00 00 00  2f de 56 26  30 00 00 00 6f 68 65 6c 6c 6f 20 06 00 11 60 68 65 6c 6c 6f 20",
        },
        Vector {
            name: "error",
            config: CodecConfig::default(),
            body: Body::Error(ErrorCode::NOT_FOUND, "no such function"),
            flags: Flags::ERROR,
            wire_flags: Flags::ERROR,
            hex: "41 49 01 08  14 00 00 00  8c ae 78 cf  03 00 00 00 6e 6f 20 73 75 63 68 20 66 75 6e 63 74 69 6f 6e",
        },
        Vector {
            name: "expects response",
            config: CodecConfig::default(),
            body: Body::Payload(b"ping"),
            flags: Flags::EXPECTS_RESPONSE,
            wire_flags: Flags::EXPECTS_RESPONSE,
            hex: "41 49 01 04  04 00 00 00  b3 cc e3 4f  70 69 6e 67",
        },
        Vector {
            name: "typed (7u32, \"seven\")",
            config: CodecConfig::default(),
            body: Body::Payload(&[0x07, 0x05, b's', b'e', b'v', b'e', b'n']),
            flags: Flags::NONE,
            wire_flags: Flags::NONE,
            hex: "41 49 01 00  07 00 00 00  89 92 8d 7a  07 05 73 65 76 65 6e",
        },
    ]
}

fn encode_with<C: Checksum>(codec: &Codec<C>, v: &Vector) -> Vec<u8> {
    let mut buf = vec![0; 256];
    let len = match v.body {
        Body::Payload(payload) => codec.encode_into(&mut buf, payload, v.flags),
        Body::Error(code, message) => codec.encode_error_into(&mut buf, code, message),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", v.name));
    buf.truncate(len);
    buf
}

#[test]
fn encoder_writes_the_golden_bytes() {
    let mut wrong = Vec::new();
    for v in vectors() {
        let got = encode_with(&Codec::new(v.config), &v);
        if got != hex(v.hex) {
            wrong.push(format!(
                "{}:\n  want {}\n  got  {}",
                v.name,
                to_hex(&hex(v.hex)),
                to_hex(&got)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "golden vectors differ:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn encode_vec_and_encode_value_agree_with_encode_into() {
    for v in vectors() {
        let codec = Codec::new(v.config);
        let via_vec = match v.body {
            Body::Payload(payload) => codec.encode(payload, v.flags),
            Body::Error(code, message) => codec.encode_error(code, message),
        }
        .unwrap();
        assert_eq!(via_vec, hex(v.hex), "{}", v.name);
    }
    let typed = Codec::new(CodecConfig::default())
        .encode_value(&(7u32, "seven"), Flags::NONE)
        .unwrap();
    let v = vectors()
        .into_iter()
        .find(|v| v.name.starts_with("typed"))
        .unwrap();
    assert_eq!(typed, hex(v.hex));
}

#[test]
fn golden_bytes_decode_back() {
    for v in vectors() {
        let bytes = hex(v.hex);
        // Decode with the default config: compression settings only matter to the encoder.
        let codec = Codec::new(CodecConfig::default());
        let envelope = codec
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(codec.decode_trusted(&bytes), Ok(envelope), "{}", v.name);
        assert_eq!(envelope.flags(), v.wire_flags, "{}", v.name);
        let mut scratch = Vec::new();
        match v.body {
            Body::Payload(payload) => {
                assert_eq!(
                    envelope.payload(&mut scratch).unwrap(),
                    payload,
                    "{}",
                    v.name
                );
                assert!(envelope.error(&mut scratch).is_none());
            }
            Body::Error(code, message) => {
                let error = envelope.error(&mut scratch).unwrap().unwrap();
                assert_eq!((error.code, error.message), (code, message), "{}", v.name);
            }
        }
    }
}

#[test]
fn typed_vector_decodes_as_a_value() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name.starts_with("typed"))
        .unwrap();
    let bytes = hex(v.hex);
    let mut scratch = Vec::new();
    let value: (u32, &str) = Codec::new(CodecConfig::default())
        .decode(&bytes)
        .unwrap()
        .value(&mut scratch)
        .unwrap();
    assert_eq!(value, (7, "seven"));
}

/// CRC-32/ISO-HDLC bit by bit, straight from its definition (reflected polynomial
/// 0xEDB88320, initial value and final xor 0xFFFFFFFF): an implementation independent of
/// `crc32fast` to check the vectors against.
struct BitwiseCrc32;

impl Checksum for BitwiseCrc32 {
    fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        let mut crc = !crc;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}

#[test]
fn bitwise_crc_is_iso_hdlc() {
    assert_eq!(BitwiseCrc32.update(0, b"123456789"), 0xCBF4_3926);
}

#[test]
fn golden_checksums_match_an_independent_crc32() {
    for v in vectors() {
        let codec = Codec::with_checksum(v.config, BitwiseCrc32);
        assert_eq!(encode_with(&codec, &v), hex(v.hex), "{}", v.name);
        let bytes = hex(v.hex);
        codec.decode(&bytes).unwrap();
    }
}

#[test]
fn every_single_bit_flip_of_every_vector_is_detected() {
    let codec = Codec::new(CodecConfig::default());
    for v in vectors() {
        let bytes = hex(v.hex);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                codec.decode(&flipped).is_err(),
                "{}: flipping bit {bit} went unnoticed",
                v.name
            );
        }
    }
}
