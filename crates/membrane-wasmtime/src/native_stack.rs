//! The calling thread's native stack: guest code runs on it, so a call first checks that
//! it has room for `max_wasm_stack` plus the host's own frames.
//!
//! wasmtime bounds guest recursion at `max_wasm_stack` below the stack pointer where
//! the guest is entered, but cannot know how much stack the thread has: on a thread
//! with less, deep guest recursion runs off the end of the thread's stack, and the
//! operating system ends the whole process. Checking first turns that into an error.

use std::cell::Cell;

use membrane_runtime::{ErrorKind, LimitKind, Result};

/// Stack kept for the host's own frames beyond the guest's `max_wasm_stack`: wasmtime's
/// trampolines, membrane's call path and the host functions the guest calls, which
/// run below the guest's frames.
pub(crate) const HOST_STACK_RESERVE: usize = 256 << 10;

/// Not read yet.
const UNKNOWN: usize = usize::MAX;

thread_local! {
    /// The lowest usable address of this thread's stack, `0` where the platform does
    /// not tell, [`UNKNOWN`] before the first call on this thread.
    static STACK_LOW: Cell<usize> = const { Cell::new(UNKNOWN) };
}

/// Fails with `LimitKind::NativeStack` when the calling thread has less than
/// `max_wasm_stack` + [`HOST_STACK_RESERVE`] bytes of stack left below this point.
/// Where the platform does not tell the stack's bounds, nothing is checked.
#[inline]
pub(crate) fn check(max_wasm_stack: usize) -> Result<()> {
    let low = STACK_LOW.with(|cell| match cell.get() {
        UNKNOWN => {
            let low = stack_low();
            cell.set(low);
            low
        }
        low => low,
    });
    if low == 0 {
        return Ok(());
    }
    let here = std::hint::black_box(&low) as *const usize as usize;
    let available = here.saturating_sub(low);
    let required = max_wasm_stack.saturating_add(HOST_STACK_RESERVE);
    if available < required {
        return Err(stack_too_small(available, required));
    }
    Ok(())
}

#[cold]
fn stack_too_small(available: usize, required: usize) -> membrane_runtime::Error {
    ErrorKind::Limit(LimitKind::NativeStack {
        available,
        required,
    })
    .into()
}

/// The lowest usable address of the calling thread's stack (above its guard area), or
/// 0 if it cannot be read.
#[cfg(target_os = "linux")]
// The crate denies `unsafe`; this is one of its two exceptions: the stack's bounds are
// only known to libc (`pthread_getattr_np`), through raw pointers to C structures.
#[allow(unsafe_code)]
fn stack_low() -> usize {
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before it is read, and
    // destroyed once; the out-pointers point to live locals of the right types.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 0;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let mut guard: libc::size_t = 0;
        let stack = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        let guarded = libc::pthread_attr_getguardsize(&attr, &mut guard);
        libc::pthread_attr_destroy(&mut attr);
        if stack != 0 || addr.is_null() {
            return 0;
        }
        // The guard area, if reported inside the stack, is not usable.
        (addr as usize).saturating_add(if guarded == 0 { guard } else { 0 })
    }
}

#[cfg(not(target_os = "linux"))]
fn stack_low() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_with_room_passes_and_a_small_one_is_refused() {
        let ok = std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| check(512 << 10))
            .unwrap()
            .join()
            .unwrap();
        assert!(ok.is_ok(), "{ok:?}");
        let small = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| check(512 << 10))
            .unwrap()
            .join()
            .unwrap();
        if cfg!(target_os = "linux") {
            let e = small.unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Limit(LimitKind::NativeStack { available, required })
                    if *available < 256 << 10 && *required == (512 << 10) + HOST_STACK_RESERVE),
                "{e}"
            );
        }
    }
}
