//! Every mutable global of the guest SDK, in one place, with the one reason they may be
//! plain statics.
//!
//! A module built for wasm32 without the `atomics` target feature runs one thread (the
//! crate refuses to build with `atomics`), so a global is never touched by two threads
//! at once: [`SingleThreaded`] says so to the compiler, for this module's statics only.
//! What each global holds, and when it may be borrowed, is documented on it; the modules
//! that use them keep the `unsafe` blocks that borrow them, each with its own reason.
//!
//! Off wasm32 (the crate's own unit tests on the build machine, which run on several
//! threads) the exports never run: `LAST_INPUT` stays `(0, 0)` and the scratch buffer
//! does not exist; the arena and the out-of-memory buffer are used by one test function
//! only (`export::tests`).

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
compile_error!("membrane-guest supports single-threaded wasm32 only (no `atomics` target feature)");

use core::cell::{Cell, UnsafeCell};
#[cfg(all(feature = "std", target_arch = "wasm32"))]
use core::sync::atomic::AtomicBool;

/// A value made a `static` of a single-threaded module.
pub(crate) struct SingleThreaded<T>(pub(crate) T);

// SAFETY: wasm32 without `atomics` (checked above) has exactly one thread; off wasm32
// see the module's documentation: no two threads use one of these globals.
unsafe impl<T> Sync for SingleThreaded<T> {}

/// Every arena allocation is 8-aligned: with the bump's minimum alignment equal to the
/// requested one, bumpalo's fast path needs no extra rounding of its pointer.
pub(crate) const ARENA_ALIGN: usize = 8;

/// The bump allocator of the per-call arena.
pub(crate) type Bump = bumpalo::Bump<ARENA_ALIGN>;

/// The per-call arena (`arena`), created on first use. The only `&mut` to it is taken
/// when the host resets it, which the ABI allows only while no call runs.
pub(crate) static ARENA: SingleThreaded<UnsafeCell<Option<Bump>>> =
    SingleThreaded(UnsafeCell::new(None));

/// How many times the arena has been reset (wrapping): memory handed out while the
/// count had one value is reclaimed once it changes.
pub(crate) static RESETS: SingleThreaded<Cell<u32>> = SingleThreaded(Cell::new(0));

/// The payload (address, length) of the innermost running call's input envelope when
/// that envelope has no flags set, remembered so that `return_ok` can hand an unchanged
/// payload back in place, header and all; `(0, 0)` for none (no slice starts at
/// address 0, so it matches no payload).
pub(crate) static LAST_INPUT: SingleThreaded<Cell<(usize, usize)>> =
    SingleThreaded(Cell::new((0, 0)));

/// Size of [`SCRATCH`].
#[cfg(target_arch = "wasm32")]
pub(crate) const SCRATCH_LEN: usize = 1024;

/// The host-call scratch buffer (`host`): a request envelope that fits is serialized
/// straight into it and the host writes the response over it. Borrowed by one
/// `call_host` at a time, as [`SCRATCH_BUSY`] records; no Rust reference into it lives
/// across an import call.
#[cfg(target_arch = "wasm32")]
pub(crate) static SCRATCH: SingleThreaded<UnsafeCell<[u8; SCRATCH_LEN]>> =
    SingleThreaded(UnsafeCell::new([0; SCRATCH_LEN]));

/// Whether [`SCRATCH`] holds bytes a running `call_host` still needs: its request while
/// it is serialized, its response while it is decoded. A host call made from inside a
/// `Serialize` or `Deserialize` impl (a host call within a host call's value) then goes
/// through the arena and passes no response buffer, so it cannot overwrite them.
#[cfg(target_arch = "wasm32")]
pub(crate) static SCRATCH_BUSY: SingleThreaded<Cell<bool>> = SingleThreaded(Cell::new(false));

/// Size of [`OUT_OF_MEMORY`]: an error envelope with the longest message it carries.
pub(crate) const OUT_OF_MEMORY_LEN: usize = 64;

/// The buffer of the `OUT_OF_MEMORY` error envelope written when the arena cannot even
/// hold an error (`export`): written only there, read by the host after the export
/// returned.
pub(crate) static OUT_OF_MEMORY: SingleThreaded<UnsafeCell<[u8; OUT_OF_MEMORY_LEN]>> =
    SingleThreaded(UnsafeCell::new([0; OUT_OF_MEMORY_LEN]));

/// Whether the std panic hook that reports panics to the host is installed (`panic`).
#[cfg(all(feature = "std", target_arch = "wasm32"))]
pub(crate) static PANIC_HOOK_INSTALLED: AtomicBool = AtomicBool::new(false);
