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
        let mut hasher = crc32fast::Hasher::new_with_initial(crc);
        hasher.update(bytes);
        hasher.finalize()
    }
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
const FUSE_CHUNK: usize = 16 * 1024;

/// Copies `src` into `dst` and continues the CRC `crc` over it in the same pass over
/// memory, chunk by chunk, so each chunk is read from main memory once.
///
/// Returns the CRC of the earlier bytes followed by `src`.
///
/// # Panics
///
/// If `dst.len() != src.len()` (a caller bug, never caused by input data).
#[inline]
pub fn copy_and_checksum<C: Checksum + ?Sized>(c: &C, crc: u32, dst: &mut [u8], src: &[u8]) -> u32 {
    assert_eq!(dst.len(), src.len(), "copy_and_checksum: lengths differ");
    if src.len() <= FUSE_CHUNK {
        dst.copy_from_slice(src);
        return c.update(crc, src);
    }
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
