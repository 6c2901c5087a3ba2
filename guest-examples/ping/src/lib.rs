//! One side of a rally played through the runtime (the other is `pong`): each stroke
//! records the call's context and hands the ball to the other module until the rally
//! ends, so the host sees the chain of calls, its depths, callers and request id.
//! Also the calling side of the runtime tests: calls whose failures come back as data,
//! a relay of bytes to any module, and its own memory size.

use membrane_guest::{Error, Output, export};
use serde::{Deserialize, Serialize};

/// One stroke of a rally: the context of the call that played it.
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

/// This call's context as a [`Hit`].
pub fn hit() -> Result<Hit, Error> {
    let ctx = membrane_guest::context()?;
    Ok(Hit {
        module: ctx.module,
        caller: ctx.caller,
        request_id: ctx.request_id,
        depth: ctx.depth,
    })
}

/// Plays a stroke and, while `strokes > 0`, hands the ball to `pong` with one stroke
/// fewer. Returns every stroke of the rally from this one on. A failure further down
/// the chain (the depth limit, a busy partner) comes back as this call's error.
#[export]
pub fn rally(strokes: u32) -> Result<Vec<Hit>, Error> {
    let here = hit()?;
    let mut rest = match strokes {
        0 => Vec::new(),
        n => membrane_guest::call::<u32, Vec<Hit>>("pong", "rally", &(n - 1))?,
    };
    rest.insert(0, here);
    Ok(rest)
}

/// This call's context.
#[export]
pub fn whoami(_: ()) -> Result<Hit, Error> {
    hit()
}

/// Calls `function` of `module` with `input` as raw bytes and reports the outcome as
/// data: `(0, output)` on success, `(code, message bytes)` on failure. The caller's own
/// call always succeeds, whatever the callee did.
#[export]
pub fn probe(target: (String, String, Vec<u8>)) -> Result<(u32, Vec<u8>), Error> {
    let (module, function, input) = target;
    Ok(
        match membrane_guest::call_bytes(&module, &function, &input) {
            Ok(output) => (0, output),
            Err(e) => (e.code.0, e.message.into_bytes()),
        },
    )
}

/// Calls `function` of `module` twice with the same input and returns both outputs: a
/// caller that goes on after a failed call, and calls again.
#[export]
pub fn twice(target: (String, String, Vec<u8>)) -> Result<(u32, u32), Error> {
    let (module, function, input) = target;
    let code = |r: Result<Vec<u8>, Error>| r.map_or_else(|e| e.code.0, |_| 0);
    let first = code(membrane_guest::call_bytes(&module, &function, &input));
    let second = code(membrane_guest::call_bytes(&module, &function, &input));
    Ok((first, second))
}

/// Hands its input to `echo` of the module `echo` and returns what comes back where
/// the host wrote it (`membrane_guest::forward`): the guest→guest call benchmark.
#[export]
pub fn relay(input: &[u8]) -> Result<Output, Error> {
    membrane_guest::forward("echo", "echo", input)
}

/// [`relay`] with the response copied once into the output
/// (`call_bytes_with(.., Output::copy_of)`), for comparison.
#[export]
pub fn relay_copy(input: &[u8]) -> Result<Output, Error> {
    membrane_guest::call_bytes_with("echo", "echo", input, Output::copy_of)?
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

/// The runtime's modules, if the host allows listing them.
#[export]
pub fn list(_: ()) -> Result<Vec<(String, Vec<String>)>, Error> {
    Ok(membrane_guest::modules()?
        .into_iter()
        .map(|m| (m.name, m.functions))
        .collect())
}
