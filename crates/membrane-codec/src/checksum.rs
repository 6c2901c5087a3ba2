//! The envelope checksum: CRC-32/ISO-HDLC over header bytes 0–7 and the payload.

use membrane_types::Header;

/// A CRC-32/ISO-HDLC implementation that can continue from a previous value.
///
/// The default, [`Crc32Fast`], is `crc32fast` (hardware-accelerated where the CPU allows).
/// A wasm guest plugs in an implementation that asks the host to checksum its memory at
/// native speed (see `membrane-guest`).
pub trait Checksum {
    /// Continues the finished CRC `crc` of some bytes over `bytes`: the result is the CRC
    /// of the earlier bytes followed by `bytes` (`update(0, a ++ b) == update(update(0, a), b)`).
    fn update(&self, crc: u32, bytes: &[u8]) -> u32;
}

/// [`Checksum`] computed by `crc32fast`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc32Fast;

impl Checksum for Crc32Fast {
    #[inline]
    fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        if bytes.len() < SMALL_INPUT {
            return crc32_small(crc, bytes);
        }
        crc32_large(crc, bytes)
    }
}

/// CRC-32/ISO-HDLC by `crc32fast`, kept out of line so that the short path of
/// [`Crc32Fast::update`] inlines into its callers.
#[inline(never)]
fn crc32_large(crc: u32, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc);
    hasher.update(bytes);
    hasher.finalize()
}

/// Below this length `crc32fast`'s per-call setup (CPU feature dispatch, state) costs
/// more than the checksum itself, and its hardware path is not used anyway.
const SMALL_INPUT: usize = 64;

/// The reflected CRC-32/ISO-HDLC polynomial.
const POLY: u32 = 0xEDB8_8320;

/// Slicing-by-8 tables, computed at compile time.
static TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
};

/// CRC-32/ISO-HDLC of short inputs (an envelope header, a small payload): slicing-by-8,
/// no setup. Same results as `crc32fast` (tested below).
#[inline]
fn crc32_small(crc: u32, bytes: &[u8]) -> u32 {
    let t = &TABLES;
    let mut c = !crc;
    let mut chunks = bytes.chunks_exact(8);
    for b in &mut chunks {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) ^ c;
        let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

impl<C: Checksum + ?Sized> Checksum for &C {
    #[inline]
    fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        (**self).update(crc, bytes)
    }
}

/// The checksum an envelope with this header (its `checksum` field ignored) and this
/// carried payload must have.
#[inline]
pub fn envelope_checksum<C: Checksum + ?Sized>(c: &C, header: &Header, payload: &[u8]) -> u32 {
    let crc = c.update(0, &header.checked_prefix());
    c.update(crc, payload)
}

/// Bytes copied per step by [`copy_and_checksum`]: small enough to stay in the L1/L2
/// cache between the checksum pass and the copy pass.
pub(crate) const FUSE_CHUNK: usize = 16 * 1024;

/// Copies `src` into `dst` and continues the CRC `crc` over it in the same pass over
/// memory, chunk by chunk, so each chunk is read from main memory once.
///
/// Returns the CRC of the earlier bytes followed by `src`.
///
/// # Panics
///
/// If `dst.len() != src.len()` (a caller bug, never caused by input data).
// Always inlined: for one chunk it is a copy and a short checksum, on the path of
// every call (`Codec::encode_into`).
#[inline(always)]
pub fn copy_and_checksum<C: Checksum + ?Sized>(c: &C, crc: u32, dst: &mut [u8], src: &[u8]) -> u32 {
    assert_eq!(dst.len(), src.len(), "copy_and_checksum: lengths differ");
    if src.len() <= FUSE_CHUNK {
        // An empty payload (postcard's `()`, say) is common enough to skip the call to
        // `memcpy` that even a zero-length copy makes.
        if !src.is_empty() {
            dst.copy_from_slice(src);
        }
        return c.update(crc, src);
    }
    copy_and_checksum_chunks(c, crc, dst, src)
}

/// [`copy_and_checksum`] of more than one chunk: out of line, so that the one-chunk
/// case inlines into its callers.
#[inline(never)]
fn copy_and_checksum_chunks<C: Checksum + ?Sized>(
    c: &C,
    crc: u32,
    dst: &mut [u8],
    src: &[u8],
) -> u32 {
    let mut crc = crc;
    for (d, s) in dst.chunks_mut(FUSE_CHUNK).zip(src.chunks(FUSE_CHUNK)) {
        crc = c.update(crc, s);
        d.copy_from_slice(s);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32fast_is_iso_hdlc() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(Crc32Fast.update(0, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn small_path_matches_crc32fast_at_every_length_and_start() {
        let data: alloc::vec::Vec<u8> = (0..200u32).map(|i| (i * 131 + 17) as u8).collect();
        for len in 0..=data.len() {
            for start in [0u32, 1, 0xCBF4_3926, u32::MAX] {
                let mut h = crc32fast::Hasher::new_with_initial(start);
                h.update(&data[..len]);
                let want = h.finalize();
                assert_eq!(crc32_small(start, &data[..len]), want, "len {len}");
                assert_eq!(Crc32Fast.update(start, &data[..len]), want, "len {len}");
            }
        }
    }

    #[test]
    fn update_continues() {
        let c = Crc32Fast;
        assert_eq!(c.update(c.update(0, b"1234"), b"56789"), 0xCBF4_3926);
    }

    #[test]
    fn fused_copy_matches_plain_copy_and_crc() {
        let src: alloc::vec::Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        let mut dst = alloc::vec![0; src.len()];
        let crc = copy_and_checksum(&Crc32Fast, 5, &mut dst, &src);
        assert_eq!(dst, src);
        assert_eq!(crc, Crc32Fast.update(5, &src));
    }
}
