//! Codec settings.

/// Settings of a [`Codec`](crate::Codec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecConfig {
    /// Payloads longer than this many bytes are LZ4-compressed on encode, and kept
    /// compressed only if that makes them smaller. `None` (the default) never compresses:
    /// between a host and a guest in the same process, compressing costs more than the
    /// copy it saves; it pays off for envelopes that are stored or sent over a network.
    pub compress_threshold: Option<usize>,
    /// The largest uncompressed size a compressed payload may declare; larger is refused
    /// before anything is allocated (no decompression bombs). Default 64 MiB.
    pub max_decompressed_len: usize,
}

impl CodecConfig {
    /// The default maximum uncompressed payload size: 64 MiB.
    pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 64 * 1024 * 1024;

    /// A config that compresses payloads longer than `threshold` bytes.
    #[must_use]
    pub const fn compressing(threshold: usize) -> CodecConfig {
        CodecConfig {
            compress_threshold: Some(threshold),
            max_decompressed_len: Self::DEFAULT_MAX_DECOMPRESSED_LEN,
        }
    }
}

impl Default for CodecConfig {
    fn default() -> CodecConfig {
        CodecConfig {
            compress_threshold: None,
            max_decompressed_len: Self::DEFAULT_MAX_DECOMPRESSED_LEN,
        }
    }
}
