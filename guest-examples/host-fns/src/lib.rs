//! Calls host functions: `add`, `log_line`, `always_fails` and `call_back` (typed) and
//! `echo_bytes` (bytes), which the host provides (see `docs/guest-guide.md`).

use membrane_guest::{Error, Output, export, host_externs};

host_externs!(add, log_line, always_fails, call_back; bytes: echo_bytes);

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

/// A number that deserializes as `n + 1`, asking the host's `add` for it: a host call made
/// while a value is being read (an export's input, or a host function's response).
pub struct PlusOneOnRead(pub u32);

impl<'de> serde::Deserialize<'de> for PlusOneOnRead {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(deserializer)?;
        add(&(n, 1u32))
            .map(PlusOneOnRead)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// `n + 1`, computed by a host call made while this export's input is deserialized.
#[export]
pub fn add_in_input(n: PlusOneOnRead) -> Result<u32, Error> {
    Ok(n.0)
}

/// `a + b + 1`: the host's `add` answers `a + b`, and reading that answer calls `add`
/// again (a host call nested in the reading of another one's response).
#[export]
pub fn add_in_response(input: (u32, u32)) -> Result<u32, Error> {
    let sum: PlusOneOnRead = add(&input)?;
    Ok(sum.0)
}

/// Passes its input to the host's bytes function `echo_bytes` and returns the host's
/// response as its output. The response is read where the host wrote it and copied
/// once, straight into the output envelope (`Output::copy_of`).
#[export]
pub fn through_host(input: &[u8]) -> Result<Output, Error> {
    echo_bytes_with(input, Output::copy_of)?
}

/// Like `through_host`, but while the response is being read, calls `echo_bytes` again
/// with other bytes (a host call nested in the reading of another one's response): the
/// response being read must stay intact.
#[export]
pub fn through_host_nested(input: &[u8]) -> Result<Vec<u8>, Error> {
    const OTHER: &[u8] = b"the nested call's bytes, not the outer response";
    echo_bytes_with(input, |response| {
        let other = echo_bytes(OTHER)?;
        if other != OTHER {
            return Err(Error::from("the nested call's response is wrong"));
        }
        Ok(response.to_vec())
    })?
}
