//! Bytes in, bytes out, no serde: raw exports written with `host_args`, `return_ok`
//! and `return_err`, and the same written as `#[export]` bytes exports.

use membrane_guest::{Error, export, host_args, return_err, return_ok};

/// Returns its input unchanged (handed back in place, without a copy).
#[unsafe(no_mangle)]
pub extern "C" fn echo(ptr: u32, len: u32) -> u64 {
    // SAFETY: these are the arguments the host passed to this export, and the payload
    // is not used after the export returns.
    match unsafe { host_args(ptr, len) } {
        Ok(input) => return_ok(input),
        Err(packed) => packed,
    }
}

/// Returns its input reversed (a new output envelope).
#[unsafe(no_mangle)]
pub extern "C" fn reverse(ptr: u32, len: u32) -> u64 {
    // SAFETY: as in `echo`.
    match unsafe { host_args(ptr, len) } {
        Ok(input) => {
            let mut out = input.to_vec();
            out.reverse();
            return_ok(&out)
        }
        Err(packed) => packed,
    }
}

/// Always fails with application code 1001 and a message naming the input length.
#[unsafe(no_mangle)]
pub extern "C" fn reject(ptr: u32, len: u32) -> u64 {
    // SAFETY: as in `echo`.
    match unsafe { host_args(ptr, len) } {
        Ok(input) => return_err(1001, &format!("rejected {} bytes", input.len())),
        Err(packed) => packed,
    }
}

/// Returns its input unchanged, as a bytes export: the input slice is handed back in
/// place, without a copy.
#[export]
pub fn echo_bytes(input: &[u8]) -> Result<&[u8], Error> {
    Ok(input)
}

/// Returns its input reversed, as a bytes export (a new vector, copied once into the
/// output envelope).
#[export]
pub fn reverse_bytes(input: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = input.to_vec();
    out.reverse();
    Ok(out)
}

/// Returns the first half of its input: borrowed from the input but not all of it, so
/// copied once into the output envelope.
#[export]
pub fn first_half(input: &[u8]) -> Result<&[u8], Error> {
    Ok(&input[..input.len() / 2])
}
