//! Raw exports written with `host_args`, `return_ok` and `return_err`: no serde.

use membrane_guest::{host_args, return_err, return_ok};

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
