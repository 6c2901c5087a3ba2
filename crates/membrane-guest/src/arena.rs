//! The per-call arena that holds every envelope of a call, and the ABI's exports for it.
//!
//! The arena is a plain global (`state::ARENA`; wasm32 without `atomics` runs one
//! thread). The host resets it through `__membrane_alloc` when it starts a
//! top-level call (and never while a call runs), so nothing allocated during a call
//! outlives the next top-level call.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::state::{ARENA, ARENA_ALIGN as ALIGN, Bump, RESETS};

/// The number of resets so far (wrapping), to tell whether an allocation made earlier
/// has been reclaimed since.
#[inline]
pub(crate) fn resets() -> u32 {
    RESETS.0.get()
}

/// The arena, created on first use.
#[inline]
fn bump() -> &'static Bump {
    // SAFETY: single-threaded (see `state`), and the only `&mut` to the cell's content is
    // taken in `reset`, which the ABI allows only when no call is running, i.e. when no
    // reference returned here is still in use.
    unsafe { (*ARENA.0.get()).get_or_insert_with(Bump::with_min_align) }
}

/// The arena after reclaiming everything allocated in it (its largest chunk is kept
/// for reuse); created on first use. One check that the arena exists serves both the
/// reset and the allocation that follows it.
///
/// # Safety
///
/// No reference into the arena may be used afterwards: call only between top-level calls.
#[cfg(target_arch = "wasm32")]
#[inline]
unsafe fn reset() -> &'static Bump {
    // SAFETY: single-threaded, and the caller guarantees no arena reference is live.
    let bump = unsafe { (*ARENA.0.get()).get_or_insert_with(Bump::with_min_align) };
    bump.reset();
    RESETS.0.set(RESETS.0.get().wrapping_add(1));
    bump
}

/// `len` uninitialised bytes in the arena, or `None` when memory is exhausted.
///
/// The memory is fresh and exclusive, valid for writes of `len` bytes until the next
/// reset; it must be written before it is read as `u8`s.
#[inline]
pub(crate) fn alloc_uninit(len: usize) -> Option<NonNull<u8>> {
    alloc_in(bump(), len)
}

/// [`alloc_uninit`] in `bump`.
#[inline]
fn alloc_in(bump: &Bump, len: usize) -> Option<NonNull<u8>> {
    let layout = Layout::from_size_align(len, ALIGN).ok()?;
    bump.try_alloc_layout(layout).ok()
}

/// `len` zeroed bytes in the arena, or `None` when memory is exhausted.
#[inline]
pub(crate) fn alloc_zeroed(len: usize) -> Option<&'static mut [u8]> {
    let ptr = alloc_uninit(len)?.as_ptr();
    // SAFETY: `ptr` is a fresh, exclusive allocation of `len` bytes; it is initialised by
    // `write_bytes` before the slice is formed.
    unsafe {
        ptr.write_bytes(0, len);
        Some(core::slice::from_raw_parts_mut(ptr, len))
    }
}

/// The allocation entry of the ABI: `len` writable bytes for the host, or 0.
///
/// With `reset != 0` (the host starting a top-level call) the arena is reset first.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported from the module, not from the crate
pub extern "C" fn __membrane_alloc(len: u32, reset: u32) -> u32 {
    let bump = if reset != 0 {
        // SAFETY: the host passes `reset != 0` only when no call runs in this instance,
        // so no reference into the arena is live.
        unsafe { self::reset() }
    } else {
        bump()
    };
    match alloc_in(bump, len as usize) {
        Some(ptr) => ptr.as_ptr() as u32,
        None => 0,
    }
}

/// Declares ABI version 1 to the host, which reads the export's name at load time.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported from the module, not from the crate
pub extern "C" fn __membrane_abi_v1() {}
