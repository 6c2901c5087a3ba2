//! The guest's checksum: the host computes CRC-32 over guest memory at native speed.

use membrane_codec::{Checksum, Crc32Fast};

/// Below this many bytes a software CRC inside wasm is cheaper than a call to the host.
const HOST_CRC_MIN: usize = 64;

/// [`Checksum`] that asks the host (intrinsic `membrane.crc32`) for every run of bytes
/// long enough to pay for the call, and computes short runs in software.
///
/// Off wasm32 it is the software CRC throughout.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostCrc;

impl Checksum for HostCrc {
    #[inline]
    fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        if bytes.len() < HOST_CRC_MIN {
            Crc32Fast.update(crc, bytes)
        } else {
            crate::sys::crc32(crc, bytes)
        }
    }
}
