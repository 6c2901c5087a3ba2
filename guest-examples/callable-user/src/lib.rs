//! Uses host callables: functions the host registers with a runtime and hands to the
//! module by id, as data.

use membrane_guest::{Error, export};

/// Converts `amount` with the host callable `id` (which takes and returns an `f64`).
#[export]
pub fn convert(input: (u64, f64)) -> Result<f64, Error> {
    let (id, amount) = input;
    membrane_guest::call_callable(id, &amount)
}

/// Calls the callable `id` with raw bytes; reports `(0, output)` or `(code, message)`.
#[export]
pub fn probe(input: (u64, Vec<u8>)) -> Result<(u32, Vec<u8>), Error> {
    let (id, bytes) = input;
    Ok(match membrane_guest::call_callable_bytes(id, &bytes) {
        Ok(output) => (0, output),
        Err(e) => (e.code.0, e.message.into_bytes()),
    })
}
