//! Calls host functions: `add`, `log_line`, `always_fails` and `call_back`, which the
//! host provides (see `docs/guest-guide.md`).

use membrane_guest::{Error, export, host_externs};

host_externs!(add, log_line, always_fails, call_back);

/// Adds two numbers through the host.
#[export]
pub fn sum_via_host(input: (u32, u32)) -> Result<u32, Error> {
    add(&input)
}

/// Sums a list by calling the host once per element.
#[export]
pub fn sum_list(values: Vec<u32>) -> Result<u32, Error> {
    values
        .into_iter()
        .try_fold(0u32, |acc, v| add::<_, u32>(&(acc, v)))
}

/// Sums `0..n` by calling the host's `add` once per number, `(acc, i)` each time: the
/// guest→host call benchmark, doing what its bare-wasmtime floor does.
#[export]
pub fn sum_to(n: u32) -> Result<u32, Error> {
    (0..n).try_fold(0u32, |acc, i| add::<_, u32>(&(acc, i)))
}

/// Logs each line through the host; returns how many were logged.
#[export]
pub fn log_all(lines: Vec<String>) -> Result<u32, Error> {
    for line in &lines {
        log_line::<_, ()>(line)?;
    }
    Ok(lines.len() as u32)
}

/// Calls a host function that always fails and reports what came back.
#[export]
pub fn try_failing(input: String) -> Result<String, Error> {
    match always_fails::<_, ()>(&input) {
        Ok(()) => Err("the failing host function succeeded".into()),
        Err(e) => Ok(format!("code {}: {}", e.code.0, e.message)),
    }
}

/// Calls a host function that always fails and passes its error on.
#[export]
pub fn propagate_failure(input: String) -> Result<(), Error> {
    always_fails(&input)
}

/// Asks the host to call `double` back in this same instance (a re-entrant call).
#[export]
pub fn reenter(n: u32) -> Result<u32, Error> {
    call_back(&n)
}

/// Doubles a number; called back by the host from `reenter`.
#[export]
pub fn double(n: u32) -> Result<u32, Error> {
    n.checked_mul(2).ok_or_else(|| "overflow".into())
}

/// A number that serializes as `n + 1`, asking the host's `add` for it: a host call made
/// while another host call's request is being written.
struct PlusOneViaHost(u32);

impl serde::Serialize for PlusOneViaHost {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sum: u32 = add(&(self.0, 1u32)).map_err(|e| serde::ser::Error::custom(e.message))?;
        serializer.serialize_u32(sum)
    }
}

/// `n + (n + 1)`, where the second operand is computed by a host call nested in the
/// serialization of the first call's request.
#[export]
pub fn add_nested(n: u32) -> Result<u32, Error> {
    add(&(n, PlusOneViaHost(n)))
}
