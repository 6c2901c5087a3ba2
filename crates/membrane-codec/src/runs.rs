//! Writing short runs of bytes without a copy call: the postcard output both sides use
//! to serialize straight into an envelope's body.
//!
//! Serializing a value writes many short runs (varints, small fields, short strings).
//! A `memcpy` call per run costs more than the run: on the host a call into libc, in a
//! guest a variable-length `memory.copy` out of the wasm code or a loop that pays fuel
//! and interruption checks per byte. [`write_run`] copies a run shorter than 16 bytes
//! with at most two overlapping fixed-width copies, and a longer one with one bulk copy.
//!
//! The region written may be initialised (`[u8]`: the host writing into guest memory,
//! a guest writing into a static buffer) or not (`[MaybeUninit<u8>]`: a guest writing
//! into fresh arena memory, which it need not zero first).

use core::mem::MaybeUninit;

mod sealed {
    pub trait Sealed {}
    impl Sealed for [u8] {}
    impl Sealed for [core::mem::MaybeUninit<u8>] {}
}

/// Bytes a [`ShortRuns`] or [`write_run`] writes into: `[u8]` or `[MaybeUninit<u8>]`.
/// Sealed: implemented for those two only.
pub trait Region: sealed::Sealed {
    /// The region's length in bytes.
    fn size(&self) -> usize;

    /// The `len` bytes from `from`, or `None` when they are not all in the region.
    fn part(&mut self, from: usize, len: usize) -> Option<&mut Self>;

    /// Writes `byte` at `at` (`at < size()`, else a panic).
    fn put(&mut self, at: usize, byte: u8);

    /// Copies `src` to `at..at + src.len()` (within the region, else a panic).
    fn put_slice(&mut self, at: usize, src: &[u8]);
}

impl Region for [u8] {
    #[inline(always)]
    fn size(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn part(&mut self, from: usize, len: usize) -> Option<&mut [u8]> {
        self.get_mut(from..from.checked_add(len)?)
    }

    #[inline(always)]
    fn put(&mut self, at: usize, byte: u8) {
        self[at] = byte;
    }

    #[inline(always)]
    fn put_slice(&mut self, at: usize, src: &[u8]) {
        self[at..at + src.len()].copy_from_slice(src);
    }
}

impl Region for [MaybeUninit<u8>] {
    #[inline(always)]
    fn size(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn part(&mut self, from: usize, len: usize) -> Option<&mut [MaybeUninit<u8>]> {
        self.get_mut(from..from.checked_add(len)?)
    }

    #[inline(always)]
    fn put(&mut self, at: usize, byte: u8) {
        self[at].write(byte);
    }

    #[inline(always)]
    fn put_slice(&mut self, at: usize, src: &[u8]) {
        self[at..at + src.len()].write_copy_of_slice(src);
    }
}

/// Copies `src` into `dst`, a region of exactly `src.len()` bytes (a longer one gets
/// only its first `src.len()` bytes written; a shorter one, nothing): a run shorter than
/// 16 bytes with at most two overlapping copies of 8, 4 or 1 bytes (fixed widths: no
/// call, no loop), a longer one with one bulk copy.
#[inline(always)]
pub fn write_run<R: Region + ?Sized>(dst: &mut R, src: &[u8]) {
    let n = src.len();
    let Some(dst) = dst.part(0, n) else {
        return;
    };
    if n >= 16 {
        dst.put_slice(0, src);
    } else if n >= 8 {
        dst.put_slice(0, &src[..8]);
        dst.put_slice(n - 8, &src[n - 8..]);
    } else if n >= 4 {
        dst.put_slice(0, &src[..4]);
        dst.put_slice(n - 4, &src[n - 4..]);
    } else if n > 0 {
        // 1 to 3 bytes: first, middle and last (some of them the same byte).
        dst.put(0, src[0]);
        dst.put(n / 2, src[n / 2]);
        dst.put(n - 1, src[n - 1]);
    }
}

/// A postcard output into a [`Region`] that copies short runs with [`write_run`]. Its
/// output is the number of bytes written, always a prefix of the region; a value that
/// does not fit fails with `SerializeBufferFull`, having written only within the region.
///
/// ```
/// use membrane_codec::ShortRuns;
///
/// let mut buf = [0u8; 16];
/// let n = postcard::serialize_with_flavor(&(300u32, "hi"), ShortRuns::new(&mut buf[..]))?;
/// assert_eq!(&buf[..n], postcard::to_allocvec(&(300u32, "hi"))?.as_slice());
/// # Ok::<(), postcard::Error>(())
/// ```
pub struct ShortRuns<'a, R: Region + ?Sized> {
    region: &'a mut R,
    pos: usize,
}

impl<'a, R: Region + ?Sized> ShortRuns<'a, R> {
    /// An output writing `region` from its start.
    #[inline]
    pub fn new(region: &'a mut R) -> ShortRuns<'a, R> {
        ShortRuns { region, pos: 0 }
    }
}

impl<R: Region + ?Sized> postcard::ser_flavors::Flavor for ShortRuns<'_, R> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.pos >= self.region.size() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.region.put(self.pos, byte);
        self.pos += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let Some(dst) = self.region.part(self.pos, data.len()) else {
            return Err(postcard::Error::SerializeBufferFull);
        };
        write_run(dst, data);
        self.pos += data.len();
        Ok(())
    }

    #[inline]
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postcard::ser_flavors::Flavor;

    /// Writes a byte and then `data` into `region`, exactly `1 + data.len()` bytes:
    /// both fit, the next byte or run is refused, and the output counts them.
    fn byte_then_run<R: Region + ?Sized>(region: &mut R, data: &[u8]) {
        let mut out = ShortRuns::new(region);
        out.try_push(7).unwrap();
        out.try_extend(data).unwrap();
        assert!(out.try_push(0).is_err(), "len {}", data.len());
        assert!(data.is_empty() || out.try_extend(data).is_err());
        assert_eq!(out.finalize().unwrap(), 1 + data.len());
    }

    /// Runs of every length around each branch of `write_run` land intact right after
    /// the byte written before them, in an initialised region; nothing past the region
    /// is written, and a byte or run that does not fit is refused.
    #[test]
    fn runs_of_every_length_initialised() {
        for n in 0..40usize {
            let data: alloc::vec::Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let mut buf = [0xAAu8; 64];
            byte_then_run(&mut buf[..1 + n], &data);
            assert_eq!(buf[0], 7);
            assert_eq!(&buf[1..1 + n], &data[..], "len {n}");
            assert!(buf[1 + n..].iter().all(|&b| b == 0xAA), "len {n}");
        }
    }

    /// The same into uninitialised memory: the same counts and refusals (what lands
    /// there is checked by the guest SDK's tests, which read arena envelopes back).
    #[test]
    fn runs_of_every_length_uninitialised() {
        for n in 0..40usize {
            let data: alloc::vec::Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let mut buf = [MaybeUninit::<u8>::uninit(); 64];
            byte_then_run(&mut buf[..1 + n], &data);
        }
    }

    /// A typed value serialized through `ShortRuns` is what `postcard::to_slice` writes.
    #[test]
    fn short_runs_match_postcard() {
        let value = (
            7u32,
            u64::MAX,
            alloc::string::String::from("a string longer than eight bytes"),
            alloc::vec![1u16, 300, 65535],
        );
        let mut a = [0u8; 128];
        let mut b = [0u8; 128];
        let n = postcard::serialize_with_flavor(&value, ShortRuns::new(&mut a[..])).unwrap();
        let expected = postcard::to_slice(&value, &mut b).unwrap();
        assert_eq!(&a[..n], &expected[..]);
    }
}
