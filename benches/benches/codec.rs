//! Codec benches: envelope encode and decode at 0 B – 1 MiB, compressible and
//! incompressible data, with and without compression, against a plain memcpy of the
//! same size as the floor. Figures and how to read them: `docs/benchmarks.md`.
//!
//! Function ids inside each group (`codec/encode/<size>`, `codec/decode/<size>`):
//!
//! - `memcpy`: `copy_from_slice` of the payload into a preallocated buffer, the floor;
//! - `into/<config>/<data>` (encode): `Codec::encode_into` a preallocated buffer;
//! - `vec/<config>/<data>` (encode): `Codec::encode`, which allocates the `Vec`;
//! - `view/<config>/<data>` (decode): `Codec::decode` (header, length, checksum) and
//!   `Envelope::payload`: zero-copy when uncompressed, decompressed into a reused scratch
//!   buffer when compressed;
//! - `copy/<config>/<data>` (decode): `Codec::decode` then `Envelope::decompress_into` a
//!   preallocated buffer, the host's path when it copies a payload out of guest memory.
//!
//! `<config>` is `plain` (`CodecConfig::default()`, never compresses) or `lz4`
//! (`CodecConfig::compressing(0)`: compress whenever that makes the payload smaller);
//! `<data>` is `text` (repeated English text, compresses well) or `noise`
//! (pseudo-random bytes, does not compress, so `lz4` stores it as it is).

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use membrane_codec::{Codec, CodecConfig, Flags, max_encoded_len};

const SIZES: [(usize, &str); 5] = [
    (0, "0B"),
    (64, "64B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

/// Repeated English text: LZ4 shrinks it several times over.
fn text(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Pseudo-random bytes (xorshift64*): incompressible.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn configs() -> [(&'static str, Codec); 2] {
    [
        ("plain", Codec::new(CodecConfig::default())),
        ("lz4", Codec::new(CodecConfig::compressing(0))),
    ]
}

fn data(len: usize) -> [(&'static str, Vec<u8>); 2] {
    [("text", text(len)), ("noise", noise(len))]
}

/// Bytes per iteration for throughput; an empty payload is counted as one envelope.
fn throughput(len: usize) -> Throughput {
    if len == 0 {
        Throughput::Elements(1)
    } else {
        Throughput::Bytes(len as u64)
    }
}

/// The floor: copying the payload into a preallocated buffer.
fn bench_memcpy(group: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8]) {
    let mut dst = vec![0u8; payload.len()];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(payload));
            black_box(&mut dst);
        })
    });
}

fn encode(c: &mut Criterion) {
    for (len, name) in SIZES {
        let mut group = c.benchmark_group(format!("codec/encode/{name}"));
        group.throughput(throughput(len));
        bench_memcpy(&mut group, &text(len));
        for (config_name, codec) in configs() {
            for (data_name, payload) in data(len) {
                let mut buf = vec![0u8; max_encoded_len(len)];
                group.bench_function(format!("into/{config_name}/{data_name}"), |b| {
                    b.iter(|| {
                        let n = codec
                            .encode_into(&mut buf, black_box(&payload), Flags::NONE)
                            .unwrap();
                        black_box(&buf[..n]);
                    })
                });
            }
        }
        // `encode` (a new Vec each time) for completeness, on the two cases that matter.
        for (config_name, codec) in configs() {
            let payload = text(len);
            group.bench_function(format!("vec/{config_name}/text"), |b| {
                b.iter(|| black_box(codec.encode(black_box(&payload), Flags::NONE).unwrap()))
            });
        }
        group.finish();
    }
}

fn decode(c: &mut Criterion) {
    for (len, name) in SIZES {
        let mut group = c.benchmark_group(format!("codec/decode/{name}"));
        group.throughput(throughput(len));
        bench_memcpy(&mut group, &text(len));
        for (config_name, codec) in configs() {
            for (data_name, payload) in data(len) {
                let bytes = codec.encode(&payload, Flags::NONE).unwrap();
                let mut scratch = Vec::with_capacity(len);
                group.bench_function(format!("view/{config_name}/{data_name}"), |b| {
                    b.iter(|| {
                        let envelope = codec.decode(black_box(&bytes)).unwrap();
                        black_box(envelope.payload(&mut scratch).unwrap());
                    })
                });
                let mut out = vec![0u8; len];
                group.bench_function(format!("copy/{config_name}/{data_name}"), |b| {
                    b.iter(|| {
                        let envelope = codec.decode(black_box(&bytes)).unwrap();
                        let n = envelope.decompress_into(&mut out).unwrap();
                        black_box(&out[..n]);
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
