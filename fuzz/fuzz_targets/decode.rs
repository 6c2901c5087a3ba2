//! Fuzz target: `Codec::decode` and everything a receiver does with the result, on
//! arbitrary bytes. Must never panic, read out of bounds or allocate more than the
//! configured maximum.
//!
//! Each input is tried twice: as it is, and with its checksum field recomputed, so that
//! mutated inputs get past the CRC and reach the LZ4, error and postcard decoders.

#![no_main]

use libfuzzer_sys::fuzz_target;
use membrane_codec::{Checksum, Codec, CodecConfig, Crc32Fast, DecodeError, HEADER_LEN};
use serde::Deserialize;

/// A small limit keeps a forged size prefix from making each run allocate 64 MiB.
const MAX_DECOMPRESSED_LEN: usize = 64 * 1024;

/// A typed payload with borrowed, owned, optional and enum fields, to drive postcard's
/// deserializer through many paths.
#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Sample<'a> {
    id: u64,
    name: &'a str,
    #[serde(borrow)]
    bytes: &'a [u8],
    values: Vec<i32>,
    maybe: Option<(bool, char)>,
    kind: Kind,
}

#[derive(Deserialize, Debug)]
#[allow(dead_code)]
enum Kind {
    Unit,
    Tuple(u16, f32),
    Struct { text: String },
}

fuzz_target!(|data: &[u8]| {
    receive(data);
    if data.len() >= HEADER_LEN {
        let mut sealed = data.to_vec();
        let crc = Crc32Fast.update(Crc32Fast.update(0, &data[..8]), &data[HEADER_LEN..]);
        sealed[8..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        receive(&sealed);
    }
});

/// Decodes `data` and does with it everything a receiver may do.
fn receive(data: &[u8]) {
    let codec = Codec::new(CodecConfig {
        compress_threshold: None,
        max_decompressed_len: MAX_DECOMPRESSED_LEN,
    });
    let Ok(envelope) = codec.decode(data) else {
        return;
    };
    assert!(!envelope.is_compressed() || envelope.payload_len() <= MAX_DECOMPRESSED_LEN);

    let mut scratch = Vec::new();
    let payload = envelope.payload(&mut scratch).map(<[u8]>::to_vec);
    if let Ok(payload) = &payload {
        assert_eq!(payload.len(), envelope.payload_len());
        // decompress_into agrees with payload(), and refuses a buffer one byte short.
        let mut out = vec![0; payload.len()];
        assert_eq!(envelope.decompress_into(&mut out), Ok(payload.len()));
        assert_eq!(&out, payload);
        if let Some(short) = payload.len().checked_sub(1) {
            assert!(matches!(
                envelope.decompress_into(&mut out[..short]),
                Err(DecodeError::BufferTooSmall { .. })
            ));
        }
    }

    if let Some(Ok(error)) = envelope.error(&mut scratch) {
        let _ = error.code.name();
        let _ = error.message.len();
    }
    let _ = envelope.value::<Sample<'_>>(&mut scratch);
    let _ = envelope.value::<(u32, &str)>(&mut scratch);
    let _ = envelope.value::<Vec<String>>(&mut scratch);
}
