//! Loops forever: stopped only by fuel, a timeout or cancellation.

use membrane_guest::{Error, export};

/// Never returns.
#[export]
pub fn spin() -> Result<u64, Error> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Counts to `n` and returns; a bounded loop for fuel measurements.
#[export]
pub fn count(n: u64) -> Result<u64, Error> {
    let mut i: u64 = 0;
    while std::hint::black_box(i) < n {
        i += 1;
    }
    Ok(i)
}
