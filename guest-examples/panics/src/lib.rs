//! Panics with a message that the host reports as a guest panic.

use membrane_guest::{Error, export};

/// Panics with a message containing the input.
#[export]
pub fn boom(reason: String) -> Result<(), Error> {
    panic!("boom: {reason}")
}

/// Indexes past the end of a vector (a bounds-check panic).
#[export]
pub fn out_of_range(index: u32) -> Result<u32, Error> {
    let values = [1u32, 2, 3];
    Ok(values[std::hint::black_box(index) as usize])
}

/// Does not panic: shows the instance works until it does.
#[export]
pub fn fine() -> Result<u32, Error> {
    Ok(42)
}
