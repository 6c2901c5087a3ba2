//! Property tests: round trips over arbitrary payloads, flags and configs; decoding
//! never panics; every single-bit flip is detected.

use membrane_codec::{Codec, CodecConfig, DecodeError, Envelope, Flags, HEADER_LEN};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::util::{SMALL_MAX, forge, receive, receive_trusted, small_codec};

/// Payloads up to 4 KiB: random bytes, or runs of a few distinct bytes that compress.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096),
        (prop::collection::vec(any::<u8>(), 1..8), 0..4096usize)
            .prop_map(|(alphabet, len)| alphabet.iter().copied().cycle().take(len).collect()),
        prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b']), 0..4096),
    ]
}

/// Flags a sender may ask for.
fn flags() -> impl Strategy<Value = Flags> {
    (any::<bool>(), any::<bool>()).prop_map(|(expects, error)| {
        let mut flags = Flags::NONE;
        if expects {
            flags = flags | Flags::EXPECTS_RESPONSE;
        }
        if error {
            flags = flags | Flags::ERROR;
        }
        flags
    })
}

fn config() -> impl Strategy<Value = CodecConfig> {
    prop_oneof![
        Just(CodecConfig::default()),
        (0..5000usize).prop_map(CodecConfig::compressing),
    ]
}

/// A typed message with borrowed and owned fields.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Message<'a> {
    id: u64,
    name: &'a str,
    values: Vec<i32>,
    nested: Vec<(bool, &'a str)>,
    maybe: Option<f64>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips(payload in payload(), flags in flags(), config in config()) {
        let codec = Codec::new(config);
        let mut buf = vec![0; HEADER_LEN + payload.len()];
        let len = codec.encode_into(&mut buf, &payload, flags).unwrap();
        let bytes = &buf[..len];
        prop_assert_eq!(bytes, &codec.encode(&payload, flags).unwrap()[..]);

        let envelope = codec.decode(bytes).unwrap();
        prop_assert_eq!(codec.decode_trusted(bytes), Ok(envelope));
        prop_assert_eq!(envelope.flags().without(Flags::COMPRESSED), flags);
        let threshold = config.compress_threshold.unwrap_or(usize::MAX);
        if envelope.is_compressed() {
            prop_assert!(payload.len() > threshold);
            prop_assert!(len < HEADER_LEN + payload.len());
        } else {
            prop_assert_eq!(len, HEADER_LEN + payload.len());
        }
        let mut scratch = Vec::new();
        prop_assert_eq!(envelope.payload(&mut scratch).unwrap(), &payload[..]);
        let mut out = vec![0; payload.len()];
        prop_assert_eq!(envelope.decompress_into(&mut out), Ok(payload.len()));
        prop_assert_eq!(out, payload);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = receive(&small_codec(), &bytes);
        let _ = receive_trusted(&small_codec(), &bytes);
        if let Ok(envelope) = small_codec().decode(&bytes) {
            let mut scratch = Vec::new();
            let _ = envelope.value::<Message<'_>>(&mut scratch);
        }
        if let Ok(envelope) = small_codec().decode_trusted(&bytes) {
            let mut scratch = Vec::new();
            let _ = envelope.value::<Message<'_>>(&mut scratch);
        }
    }

    /// On any bytes, `decode_trusted` gives what `decode` gives, except where `decode`
    /// finds a checksum mismatch: there the trusted decode answers as `decode` would
    /// have had the checksum been right.
    #[test]
    fn trusted_decode_differs_from_decode_only_by_the_checksum(
        bits in 0u8..=255,
        carried in prop::collection::vec(any::<u8>(), 0..256),
        damage in any::<Option<(prop::sample::Index, u8)>>(),
    ) {
        let codec = small_codec();
        let mut bytes = forge(Flags::NONE, &carried);
        bytes[3] = bits;
        if let Some((index, xor)) = damage {
            let i = index.index(bytes.len());
            bytes[i] ^= xor;
        }
        let mut sealed = bytes.clone();
        crate::util::reseal(&mut sealed);
        let trusted = codec.decode_trusted(&bytes);
        match codec.decode(&bytes) {
            Err(DecodeError::ChecksumMismatch { .. }) => {
                // Everything but the checksum field is the same in `sealed`.
                let seen = |e: Envelope<'_>| (e.flags(), e.carried().to_vec(), e.payload_len());
                prop_assert_eq!(trusted.map(seen), codec.decode(&sealed).map(seen));
            }
            decoded => prop_assert_eq!(trusted, decoded),
        }
    }

    /// Arbitrary contents behind a valid header and checksum: these get past the
    /// checksum and exercise the LZ4, error and postcard decoders.
    #[test]
    fn decoding_arbitrary_payloads_never_panics(
        bits in 0u8..16,
        carried in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            // A plausible size prefix in front of arbitrary block bytes.
            (0..2 * SMALL_MAX as u32, prop::collection::vec(any::<u8>(), 0..512))
                .prop_map(|(size, block)| {
                    let mut carried = size.to_le_bytes().to_vec();
                    carried.extend_from_slice(&block);
                    carried
                }),
        ],
    ) {
        let flags = Flags::from_bits(bits).unwrap();
        let bytes = forge(flags, &carried);
        let result = receive(&small_codec(), &bytes);
        prop_assert_eq!(receive_trusted(&small_codec(), &bytes), result);
        if flags.contains(Flags::ENCRYPTED) {
            prop_assert_eq!(result, Err(DecodeError::Encrypted));
        }
        if let Ok(envelope) = small_codec().decode(&bytes) {
            prop_assert!(envelope.payload_len() <= SMALL_MAX || !envelope.is_compressed());
            let mut scratch = Vec::new();
            let _ = envelope.value::<Message<'_>>(&mut scratch);
            let _ = envelope.value::<(u32, String, Vec<u8>)>(&mut scratch);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected(
        payload in payload(),
        flags in flags(),
        config in config(),
        index in any::<prop::sample::Index>(),
    ) {
        let codec = Codec::new(config);
        let mut bytes = codec.encode(&payload, flags).unwrap();
        let bit = index.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(codec.decode(&bytes).is_err(), "bit {} of {} bytes", bit, bytes.len());
    }

    #[test]
    fn typed_round_trips(
        id in any::<u64>(),
        name in "\\PC{0,40}",
        values in prop::collection::vec(any::<i32>(), 0..64),
        nested in prop::collection::vec((any::<bool>(), "[a-z ]{0,12}"), 0..16),
        maybe in prop::option::of(-1e9f64..1e9),
        config in config(),
    ) {
        let nested: Vec<(bool, &str)> = nested.iter().map(|(b, s)| (*b, s.as_str())).collect();
        let message = Message { id, name: &name, values, nested, maybe };
        let codec = Codec::new(config);
        let bytes = codec.encode_value(&message, Flags::EXPECTS_RESPONSE).unwrap();
        let envelope = codec.decode(&bytes).unwrap();
        let mut scratch = Vec::new();
        let back: Message<'_> = envelope.value(&mut scratch).unwrap();
        prop_assert_eq!(back, message);
    }
}
