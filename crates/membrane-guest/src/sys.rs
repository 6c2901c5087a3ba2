//! The ABI intrinsics the host provides, with software stand-ins off wasm32.

#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "membrane")]
    unsafe extern "C" {
        #[link_name = "crc32"]
        fn membrane_crc32(state: u32, ptr: u32, len: u32) -> u32;
        #[link_name = "panic"]
        fn membrane_panic(ptr: u32, len: u32);
    }

    /// Continues `crc` over `bytes` on the host, at native speed.
    #[inline]
    pub(crate) fn crc32(crc: u32, bytes: &[u8]) -> u32 {
        // SAFETY: the host only reads `[ptr, ptr + len)` of this instance's memory,
        // which is exactly the live slice `bytes` (pointers are u32 on wasm32).
        unsafe { membrane_crc32(crc, bytes.as_ptr() as u32, bytes.len() as u32) }
    }

    /// Hands the host a panic message.
    #[inline]
    pub(crate) fn panic_message(message: &str) {
        // SAFETY: as above, the host only reads the live slice `message`.
        unsafe { membrane_panic(message.as_ptr() as u32, message.len() as u32) }
    }

    /// Bytes of linear memory currently allocated.
    #[inline]
    pub(crate) fn memory_len() -> usize {
        core::arch::wasm32::memory_size(0) * 65536
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use membrane_codec::{Checksum, Crc32Fast};

    /// Software CRC-32: there is no host to ask off wasm32.
    #[inline]
    pub(crate) fn crc32(crc: u32, bytes: &[u8]) -> u32 {
        Crc32Fast.update(crc, bytes)
    }

    /// Off wasm32 there is no host to tell; the panic proceeds as usual.
    #[inline]
    pub(crate) fn panic_message(_message: &str) {}
}

pub(crate) use imp::*;
