//! One test per rejection: each builds the smallest envelope that only the check under
//! test can refuse, so removing that check makes the test fail.

use membrane_codec::{
    Checksum, Codec, CodecConfig, Crc32Fast, DecodeError, EncodeError, ErrorCode, Flags,
    HEADER_LEN, max_encoded_len,
};

use crate::util::{SMALL_MAX, forge, receive, receive_trusted, reseal, small_codec, text};

/// Receives `bytes` with [`small_codec`] (decode, payload access, error parsing) and
/// asserts that it fails with exactly `want`.
///
/// Every case is also received with `decode_trusted`, which must refuse it the same
/// way unless `want` is a checksum mismatch, the one check it skips: then it must
/// accept the bytes (the cases here damage nothing else).
#[track_caller]
fn check(bytes: &[u8], want: DecodeError) {
    assert_eq!(
        receive(&small_codec(), bytes),
        Err(want),
        "bytes: {bytes:02x?}"
    );
    let trusted = if matches!(want, DecodeError::ChecksumMismatch { .. }) {
        Ok(())
    } else {
        Err(want)
    };
    assert_eq!(
        receive_trusted(&small_codec(), bytes),
        trusted,
        "trusted decode, bytes: {bytes:02x?}"
    );
}

/// A valid envelope carrying `hello`.
fn hello() -> Vec<u8> {
    Codec::new(CodecConfig::default())
        .encode(b"hello", Flags::NONE)
        .unwrap()
}

/// The carried payload of a compressed envelope of `payload`, as the encoder writes it.
fn compressed_block(payload: &[u8]) -> Vec<u8> {
    let bytes = Codec::new(CodecConfig::compressing(0))
        .encode(payload, Flags::NONE)
        .unwrap();
    assert_eq!(
        bytes[3],
        Flags::COMPRESSED.bits(),
        "test data must compress"
    );
    bytes[HEADER_LEN..].to_vec()
}

#[test]
fn the_valid_envelopes_used_below_are_accepted() {
    // Guards every test here: they fail for the reason they name, not for another one.
    let codec = small_codec();
    receive(&codec, &hello()).unwrap();
    receive(
        &codec,
        &forge(Flags::COMPRESSED, &compressed_block(&text(SMALL_MAX))),
    )
    .unwrap();
    receive(&codec, &forge(Flags::ERROR, b"\x03\0\0\0message")).unwrap();
    receive_trusted(&codec, &hello()).unwrap();
}

/// `decode_trusted` skips the checksum and nothing else: a damaged checksum field is
/// accepted by it and refused by `decode`, and on intact bytes both give the same view.
#[test]
fn trusted_decode_skips_only_the_checksum() {
    let codec = small_codec();
    let good = hello();
    assert_eq!(codec.decode_trusted(&good), codec.decode(&good));
    for bit in 0..32 {
        let mut bytes = hello();
        bytes[8 + bit / 8] ^= 1 << (bit % 8);
        assert!(
            matches!(
                codec.decode(&bytes),
                Err(DecodeError::ChecksumMismatch { .. })
            ),
            "bit {bit}"
        );
        let envelope = codec.decode_trusted(&bytes).unwrap();
        assert_eq!(envelope.uncompressed_payload(), Some(&b"hello"[..]));
        assert_eq!(
            envelope.header().checksum,
            u32::from_le_bytes(bytes[8..12].try_into().unwrap())
        );
    }
    // A checksum of zero, as a writer that never computed one would leave it.
    let mut bytes = forge(Flags::EXPECTS_RESPONSE, b"ping");
    bytes[8..12].fill(0);
    assert!(codec.decode(&bytes).is_err());
    assert_eq!(
        codec.decode_trusted(&bytes).unwrap().flags(),
        Flags::EXPECTS_RESPONSE
    );
    // What the checksum would have caught is the trusted writer's to avoid: a flag
    // flipped on `hello` is read as that flag says.
    let mut bytes = hello();
    bytes[3] = Flags::COMPRESSED.bits();
    assert!(matches!(
        receive_trusted(&codec, &bytes),
        Err(DecodeError::DecompressedTooLarge { .. })
    ));
}

#[test]
fn too_short() {
    check(&[], DecodeError::TooShort { len: 0 });
    check(&hello()[..11], DecodeError::TooShort { len: 11 });
    check(&hello()[..1], DecodeError::TooShort { len: 1 });
}

#[test]
fn bad_magic() {
    for (offset, byte, found) in [
        (0, 0x42, [0x42, 0x49]),
        (1, 0x48, [0x41, 0x48]),
        (0, 0, [0, 0x49]),
    ] {
        let mut bytes = hello();
        bytes[offset] = byte;
        reseal(&mut bytes);
        check(&bytes, DecodeError::BadMagic { found });
    }
}

#[test]
fn unknown_version() {
    for version in [0, 2, 0xff] {
        let mut bytes = hello();
        bytes[2] = version;
        reseal(&mut bytes);
        check(&bytes, DecodeError::UnsupportedVersion { found: version });
    }
}

#[test]
fn reserved_flag_bits() {
    for bit in 4..8 {
        let mut bytes = hello();
        bytes[3] = 1 << bit;
        reseal(&mut bytes);
        check(&bytes, DecodeError::ReservedFlags { bits: 1 << bit });
        // Also alongside defined flags.
        bytes[3] = (1 << bit) | Flags::EXPECTS_RESPONSE.bits();
        reseal(&mut bytes);
        check(&bytes, DecodeError::ReservedFlags { bits: bytes[3] });
    }
}

#[test]
fn payload_len_greater_than_the_bytes_present() {
    let bytes = hello();
    check(
        &bytes[..bytes.len() - 1],
        DecodeError::LengthMismatch {
            declared: 5,
            available: 4,
        },
    );
    check(
        &bytes[..HEADER_LEN],
        DecodeError::LengthMismatch {
            declared: 5,
            available: 0,
        },
    );
    // A length that would overflow a naive `HEADER_LEN + payload_len` on 32-bit targets.
    let mut bytes = hello();
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut bytes);
    check(
        &bytes,
        DecodeError::LengthMismatch {
            declared: u32::MAX,
            available: 5,
        },
    );
}

#[test]
fn payload_len_smaller_than_the_bytes_present() {
    // Trailing bytes after the payload are refused, even with a checksum over all of them.
    let mut bytes = hello();
    bytes.push(0);
    check(
        &bytes,
        DecodeError::LengthMismatch {
            declared: 5,
            available: 6,
        },
    );
    reseal(&mut bytes);
    check(
        &bytes,
        DecodeError::LengthMismatch {
            declared: 5,
            available: 6,
        },
    );
    // A whole second envelope appended.
    let mut two = hello();
    two.extend_from_slice(&hello());
    check(
        &two,
        DecodeError::LengthMismatch {
            declared: 5,
            available: 22,
        },
    );
}

#[test]
fn checksum_mismatch_on_a_flipped_payload_byte() {
    let mut bytes = hello();
    bytes[HEADER_LEN] ^= 0x20; // `hello` -> `Hello`
    let carried = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let computed = Crc32Fast.update(Crc32Fast.update(0, &bytes[..8]), &bytes[HEADER_LEN..]);
    check(&bytes, DecodeError::ChecksumMismatch { carried, computed });
}

#[test]
fn checksum_mismatch_on_a_flipped_checksum_byte() {
    let mut bytes = hello();
    bytes[11] ^= 0x80;
    let computed = u32::from_le_bytes(hello()[8..12].try_into().unwrap());
    let carried = computed ^ 0x8000_0000;
    check(&bytes, DecodeError::ChecksumMismatch { carried, computed });
}

/// The checksum covers header bytes 0–7: a flag changed in transit is caught, even when
/// the checksum was recomputed the way the payload-only design computed it.
#[test]
fn checksum_covers_the_header() {
    let payload_only = Crc32Fast.update(0, b"hello");
    for flag in [
        Flags::EXPECTS_RESPONSE,
        Flags::ERROR,
        Flags::ENCRYPTED,
        Flags::COMPRESSED,
    ] {
        // The flag flipped, checksum untouched.
        let mut bytes = hello();
        bytes[3] ^= flag.bits();
        assert!(
            matches!(
                receive(&small_codec(), &bytes),
                Err(DecodeError::ChecksumMismatch { .. })
            ),
            "{flag:?} flipped"
        );
        // The flag flipped and the checksum recomputed over the payload only.
        bytes[8..12].copy_from_slice(&payload_only.to_le_bytes());
        assert!(
            matches!(
                receive(&small_codec(), &bytes),
                Err(DecodeError::ChecksumMismatch { .. })
            ),
            "{flag:?} flipped, payload-only checksum"
        );
    }
    // Even an unmodified header with a payload-only checksum is refused.
    let mut bytes = hello();
    bytes[8..12].copy_from_slice(&payload_only.to_le_bytes());
    assert!(matches!(
        receive(&small_codec(), &bytes),
        Err(DecodeError::ChecksumMismatch { .. })
    ));
}

#[test]
fn encrypted_is_refused_with_its_own_error() {
    check(&forge(Flags::ENCRYPTED, b"hello"), DecodeError::Encrypted);
    check(&forge(Flags::ENCRYPTED, b""), DecodeError::Encrypted);
    check(
        &forge(
            Flags::ENCRYPTED | Flags::COMPRESSED,
            &compressed_block(&text(100)),
        ),
        DecodeError::Encrypted,
    );
    check(
        &forge(Flags::ENCRYPTED | Flags::ERROR, b"\x03\0\0\0no"),
        DecodeError::Encrypted,
    );
}

#[test]
fn bad_lz4_block() {
    let with_prefix = |size: u32, block: &[u8]| {
        let mut carried = size.to_le_bytes().to_vec();
        carried.extend_from_slice(block);
        forge(Flags::COMPRESSED, &carried)
    };
    // A match whose offset points before the start of the output.
    check(
        &with_prefix(16, &[0x00, 0x05, 0x00]),
        DecodeError::BadCompressedBlock,
    );
    // A match offset of zero.
    check(
        &with_prefix(16, &[0x10, b'a', 0x00, 0x00]),
        DecodeError::BadCompressedBlock,
    );
    // A literal run longer than the block.
    check(
        &with_prefix(16, &[0xf0, 0xff]),
        DecodeError::BadCompressedBlock,
    );
    check(
        &with_prefix(16, &[0x50, b'a']),
        DecodeError::BadCompressedBlock,
    );
    // An empty block declaring a non-empty payload.
    check(&with_prefix(16, &[]), DecodeError::BadCompressedBlock);
}

#[test]
fn block_decompressing_to_fewer_bytes_than_declared() {
    let payload = text(200);
    let mut carried = compressed_block(&payload);
    carried[..4].copy_from_slice(&201u32.to_le_bytes());
    check(
        &forge(Flags::COMPRESSED, &carried),
        DecodeError::BadCompressedBlock,
    );
}

#[test]
fn block_decompressing_to_more_bytes_than_declared() {
    let payload = text(200);
    let mut carried = compressed_block(&payload);
    carried[..4].copy_from_slice(&199u32.to_le_bytes());
    check(
        &forge(Flags::COMPRESSED, &carried),
        DecodeError::BadCompressedBlock,
    );
}

#[test]
fn decompressed_size_above_the_configured_max() {
    // A perfectly valid block, one byte over the limit: refused at decode, before any
    // allocation, by the declared size alone.
    let carried = compressed_block(&text(SMALL_MAX + 1));
    let declared = SMALL_MAX + 1;
    check(
        &forge(Flags::COMPRESSED, &carried),
        DecodeError::DecompressedTooLarge {
            declared,
            max: SMALL_MAX,
        },
    );
    // A bomb: 4 GiB declared, a handful of bytes carried.
    let mut bomb = u32::MAX.to_le_bytes().to_vec();
    bomb.extend_from_slice(&[0x1f, 0, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff]);
    check(
        &forge(Flags::COMPRESSED, &bomb),
        DecodeError::DecompressedTooLarge {
            declared: u32::MAX as usize,
            max: SMALL_MAX,
        },
    );
    // The limit is inclusive.
    receive(
        &small_codec(),
        &forge(Flags::COMPRESSED, &compressed_block(&text(SMALL_MAX))),
    )
    .unwrap();
}

#[test]
fn size_prefix_shorter_than_four_bytes() {
    for carried in [&b""[..], b"\x01", b"\x01\x00", b"\x01\x00\x00"] {
        check(
            &forge(Flags::COMPRESSED, carried),
            DecodeError::BadCompressedBlock,
        );
    }
}

#[test]
fn malformed_error_payload() {
    for carried in [&b""[..], b"\x03", b"\x03\x00\x00"] {
        check(
            &forge(Flags::ERROR, carried),
            DecodeError::MalformedErrorPayload,
        );
    }
    // Not UTF-8: a lone continuation byte, a truncated sequence, an encoded surrogate.
    for message in [&b"\x80"[..], b"ok \xe2\x82", b"\xed\xa0\x80"] {
        let mut carried = 3u32.to_le_bytes().to_vec();
        carried.extend_from_slice(message);
        check(
            &forge(Flags::ERROR, &carried),
            DecodeError::MalformedErrorPayload,
        );
    }
    // The check applies to the decompressed payload of a compressed error envelope too.
    let mut payload = 3u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&text(100));
    payload.push(0xff);
    let carried = compressed_block(&payload);
    check(
        &forge(Flags::ERROR | Flags::COMPRESSED, &carried),
        DecodeError::MalformedErrorPayload,
    );
    // `parse_error_payload` is the same check, usable on its own.
    assert_eq!(
        membrane_codec::parse_error_payload(b"\x03\0\0"),
        Err(DecodeError::MalformedErrorPayload)
    );
}

#[test]
fn buffer_too_small_on_decompress_into() {
    let codec = small_codec();
    let bytes = hello();
    let envelope = codec.decode(&bytes).unwrap();
    assert_eq!(
        envelope.decompress_into(&mut [0; 4]),
        Err(DecodeError::BufferTooSmall {
            needed: 5,
            available: 4
        })
    );
    assert_eq!(envelope.decompress_into(&mut [0; 5]), Ok(5));

    let payload = text(300);
    let bytes = forge(Flags::COMPRESSED, &compressed_block(&payload));
    let envelope = codec.decode(&bytes).unwrap();
    let mut out = vec![0; 299];
    assert_eq!(
        envelope.decompress_into(&mut out),
        Err(DecodeError::BufferTooSmall {
            needed: 300,
            available: 299
        })
    );
    let mut out = vec![0; 400];
    assert_eq!(envelope.decompress_into(&mut out), Ok(300));
    assert_eq!(&out[..300], &payload[..]);
}

#[test]
fn buffer_too_small_on_encode_into() {
    let codec = Codec::new(CodecConfig::default());
    let mut buf = vec![0; max_encoded_len(5) - 1];
    assert_eq!(
        codec.encode_into(&mut buf, b"hello", Flags::NONE),
        Err(EncodeError::BufferTooSmall {
            needed: 17,
            available: 16
        })
    );
    assert_eq!(
        codec.encode_into(&mut [], b"", Flags::NONE),
        Err(EncodeError::BufferTooSmall {
            needed: 12,
            available: 0
        })
    );
    // Even when the payload would compress below the buffer size, the buffer must hold
    // the uncompressed envelope: the size an encoder needs does not depend on the data.
    let compressing = Codec::new(CodecConfig::compressing(0));
    let payload = text(1000);
    let mut buf = vec![0; max_encoded_len(payload.len()) - 1];
    assert_eq!(
        compressing.encode_into(&mut buf, &payload, Flags::NONE),
        Err(EncodeError::BufferTooSmall {
            needed: 1012,
            available: 1011
        })
    );
    let mut buf = vec![0; max_encoded_len(4 + 2) - 1];
    assert_eq!(
        codec.encode_error_into(&mut buf, ErrorCode::DENIED, "no"),
        Err(EncodeError::BufferTooSmall {
            needed: 18,
            available: 17
        })
    );
}

/// Receives a valid envelope carrying `payload` and deserializes it as a `T`.
fn value_of<T: for<'de> serde::Deserialize<'de>>(payload: &[u8]) -> Result<T, DecodeError> {
    let codec = small_codec();
    let bytes = codec.encode(payload, Flags::NONE).unwrap();
    let envelope = codec.decode(&bytes)?;
    assert_eq!(codec.decode_trusted(&bytes), Ok(envelope));
    let mut scratch = Vec::new();
    envelope.value(&mut scratch)
}

#[test]
fn trailing_bytes_after_a_postcard_value() {
    let mut payload = membrane_codec::to_payload(&7u32).unwrap();
    payload.push(0);
    assert_eq!(
        value_of::<u32>(&payload),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    let mut payload = membrane_codec::to_payload(&(1u8, "one")).unwrap();
    payload.extend_from_slice(b"xyz");
    assert_eq!(
        value_of::<(u8, String)>(&payload),
        Err(DecodeError::TrailingBytes { count: 3 })
    );
    assert_eq!(
        value_of::<()>(b"\0"),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

#[test]
fn payload_that_does_not_deserialize() {
    #[track_caller]
    fn check_value<T: for<'de> serde::Deserialize<'de>>(payload: &[u8], reason: &'static str) {
        assert_eq!(
            value_of::<T>(payload).err(),
            Some(DecodeError::Deserialize { reason })
        );
    }
    check_value::<u32>(b"", "unexpected end of payload");
    check_value::<u32>(&[0xff; 6], "bad varint");
    check_value::<bool>(&[2], "bad bool");
    check_value::<String>(&[2, 0xc3, 0x28], "bad utf-8 in a string");
    check_value::<Option<u8>>(&[7], "bad option tag");
    check_value::<char>(&[4, 0xff, 0xff, 0xff, 0xff], "bad char");
    // A sequence declaring far more elements than there are bytes.
    check_value::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0x0f], "unexpected end of payload");
}

/// When an envelope has several faults, the first check in the documented order wins
/// (`docs/wire-format.md`, "Rejections").
#[test]
fn checks_run_in_the_documented_order() {
    // Bad magic and unknown version and reserved flags: magic first.
    let mut bytes = hello();
    bytes[0] = 0;
    bytes[2] = 9;
    bytes[3] = 0xf0;
    check(&bytes, DecodeError::BadMagic { found: [0, 0x49] });
    // Unknown version and reserved flags: version.
    bytes[0] = 0x41;
    check(&bytes, DecodeError::UnsupportedVersion { found: 9 });
    // Reserved flags and a length mismatch: flags.
    bytes[2] = 1;
    bytes.push(0);
    check(&bytes, DecodeError::ReservedFlags { bits: 0xf0 });
    // Length mismatch and a bad checksum: length.
    bytes[3] = 0;
    bytes[8] ^= 1;
    check(
        &bytes,
        DecodeError::LengthMismatch {
            declared: 5,
            available: 6,
        },
    );
    // A bad checksum on an encrypted envelope: checksum (an encrypted envelope that
    // arrived damaged is reported as damaged); without the checksum, encrypted.
    let mut bytes = forge(Flags::ENCRYPTED, b"hello");
    bytes[HEADER_LEN] ^= 1;
    assert!(matches!(
        receive(&small_codec(), &bytes),
        Err(DecodeError::ChecksumMismatch { .. })
    ));
    assert_eq!(
        receive_trusted(&small_codec(), &bytes),
        Err(DecodeError::Encrypted)
    );
    // Encrypted and compressed with a short size prefix: encrypted.
    check(
        &forge(Flags::ENCRYPTED | Flags::COMPRESSED, b"\x01"),
        DecodeError::Encrypted,
    );
}
