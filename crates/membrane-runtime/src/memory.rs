//! Views of guest memory: every region a guest names, bounds-checked before use.
//!
//! A guest's pointers and lengths are never trusted: a region is checked against the
//! current size of guest memory with overflow-checked arithmetic, and a region outside
//! it is an ABI violation ([`AbiViolation::BadPointer`](crate::AbiViolation::BadPointer)).

use crate::error::{Error, Result};

/// Bounds-checked view of `[ptr, ptr + len)` in guest memory; `what` names the region
/// in the error.
#[inline]
pub fn guest_region<'m>(
    memory: &'m [u8],
    ptr: u32,
    len: u32,
    what: &'static str,
) -> Result<&'m [u8]> {
    let start = ptr as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= memory.len() => Ok(&memory[start..end]),
        _ => Err(Error::bad_pointer(what, ptr, len, memory.len())),
    }
}

/// Bounds-checked mutable view of `[ptr, ptr + len)` in guest memory.
#[inline]
pub fn guest_region_mut<'m>(
    memory: &'m mut [u8],
    ptr: u32,
    len: u32,
    what: &'static str,
) -> Result<&'m mut [u8]> {
    let memory_len = memory.len();
    let start = ptr as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= memory_len => Ok(&mut memory[start..end]),
        _ => Err(Error::bad_pointer(what, ptr, len, memory_len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AbiViolation, ErrorKind};

    #[test]
    fn regions_inside_memory_only() {
        let mut memory = [0u8; 16];
        assert_eq!(guest_region(&memory, 0, 16, "r").unwrap().len(), 16);
        assert_eq!(guest_region(&memory, 16, 0, "r").unwrap().len(), 0);
        assert_eq!(guest_region_mut(&mut memory, 4, 8, "r").unwrap().len(), 8);
        for (ptr, len) in [(0, 17), (17, 0), (u32::MAX, 2), (8, u32::MAX)] {
            let e = guest_region(&memory, ptr, len, "r").unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Abi(AbiViolation::BadPointer { memory_len: 16, .. })
                ),
                "{e}"
            );
            assert!(guest_region_mut(&mut memory, ptr, len, "r").is_err());
        }
    }
}
