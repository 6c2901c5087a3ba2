//! The other side of `ping`'s rally, and a callee that fails in every way a callee can:
//! with its own error, a panic, a trap, or by running until a limit stops it.

use membrane_guest::{Error, export};
use serde::{Deserialize, Serialize};

/// One stroke of a rally (the same encoding as `ping`'s).
#[derive(Debug, Serialize, Deserialize)]
pub struct Hit {
    /// The module that played it.
    pub module: String,
    /// Who called it (`None`: the host).
    pub caller: Option<String>,
    /// The request the rally belongs to.
    pub request_id: u64,
    /// How deep in the chain the stroke was played.
    pub depth: u32,
}

/// Plays a stroke and, while `strokes > 0`, hands the ball back to `ping`.
#[export]
pub fn rally(strokes: u32) -> Result<Vec<Hit>, Error> {
    let ctx = membrane_guest::context()?;
    let here = Hit {
        module: ctx.module,
        caller: ctx.caller,
        request_id: ctx.request_id,
        depth: ctx.depth,
    };
    let mut rest = match strokes {
        0 => Vec::new(),
        n => membrane_guest::call::<u32, Vec<Hit>>("ping", "rally", &(n - 1))?,
    };
    rest.insert(0, here);
    Ok(rest)
}

/// Returns its input.
#[export]
pub fn echo(input: &[u8]) -> Result<&[u8], Error> {
    Ok(input)
}

/// Fails with application code 1234.
#[export]
pub fn fail(_: ()) -> Result<(), Error> {
    Err(Error::new(1234, "pong refuses"))
}

/// Panics.
#[export]
pub fn boom(_: ()) -> Result<(), Error> {
    panic!("pong exploded")
}

/// Executes `unreachable`.
#[export]
pub fn trap(_: ()) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!()
}

/// Runs until a limit (fuel, its timeout, or its caller's deadline) stops it.
#[export]
pub fn spin(_: ()) -> Result<(), Error> {
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

/// The module's linear memory in bytes.
#[export]
pub fn memory_size(_: ()) -> Result<u64, Error> {
    #[cfg(target_arch = "wasm32")]
    let pages = core::arch::wasm32::memory_size(0) as u64;
    #[cfg(not(target_arch = "wasm32"))]
    let pages = 0;
    Ok(pages * 65536)
}
