//! Recurses without bound: stopped by the host's wasm stack limit.

use std::hint::black_box;

use membrane_guest::{Error, export};

#[allow(unconditional_recursion)] // the point of this module
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    black_box(recurse(black_box(depth + 1))) + frame[3]
}

/// Never returns: each level keeps a frame on the stack.
#[export]
pub fn deep(start: u64) -> Result<u64, Error> {
    Ok(recurse(start))
}

fn bounded(depth: u32) -> u32 {
    if depth == 0 {
        0
    } else {
        1 + black_box(bounded(black_box(depth - 1)))
    }
}

/// Recurses `n` levels and returns `n`: fine within the stack limit.
#[export]
pub fn shallow(n: u32) -> Result<u32, Error> {
    Ok(bounded(n))
}
