//! A hostile component (`wit/hostile.wit`): an endless loop, a memory hog, a huge list,
//! a list result that lies about its length, a panic. Built with wit-bindgen for
//! wasm32-unknown-unknown; `cargo xtask build-guests` makes the component.

use std::hint::black_box;

/// The bindings wit-bindgen generates from `wit/hostile.wit` (undocumented where the WIT is).
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "hostile",
        path: "wit/hostile.wit",
    });
}

use bindings::Guest;

/// The component.
struct Hostile;

impl Guest for Hostile {
    fn fine() -> u32 {
        42
    }

    fn spin() {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }

    fn hog() -> u32 {
        let mut taken: u32 = 0;
        loop {
            // Leaked, so never given back: an allocation that cannot be had aborts
            // (a trap once the host refused to grow memory).
            black_box(Vec::<u8>::with_capacity(1 << 20).leak());
            taken = taken.wrapping_add(1);
            black_box(taken);
        }
    }

    fn huge(n: u32) -> Vec<u32> {
        (0..n).collect()
    }

    fn past_memory() -> Vec<u8> {
        let start = Vec::<u8>::with_capacity(16).leak().as_mut_ptr();
        // SAFETY: none; this guest lies on purpose. The vector is never read, written
        // or freed in Rust: the bindings only hand its (pointer, length) to the host as
        // the result, 2 GiB from a 16-byte allocation, which the host must refuse to
        // lift. Never do this in a real guest.
        unsafe { Vec::from_raw_parts(start, 0x7fff_0000, 0x7fff_0000) }
    }

    fn boom(msg: String) {
        panic!("boom: {msg}");
    }
}

bindings::export!(Hostile with_types_in bindings);
