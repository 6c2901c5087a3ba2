//! Bytes exports (`#[export] fn f(input: &[u8]) -> Result<B, E>`): the payload in, bytes
//! out, no serde either way; and [`Output`], bytes already framed as the output.

use membrane_codec::Flags;

use crate::arena;
use crate::error::Error;
use crate::export::{encode_bytes, host_args, pack, return_err, return_ok};

/// What a bytes export may return: any `B: AsRef<[u8]>` (`Vec<u8>`, `&[u8]` borrowed from
/// the input, `&'static [u8]`, ...) or an [`Output`].
///
/// Returned bytes become the output payload. The input slice itself, returned whole, is
/// handed back in place, header and all (no copy); other bytes are copied once into an
/// output envelope in the arena; an [`Output`] is in place already.
///
/// ```
/// use membrane_guest::{export, Error};
///
/// /// Returns its input: handed back in place.
/// #[export]
/// pub fn echo(input: &[u8]) -> Result<&[u8], Error> {
///     Ok(input)
/// }
///
/// /// Returns its input without surrounding ASCII whitespace: a part of the input,
/// /// copied once into the output.
/// #[export]
/// pub fn trim(input: &[u8]) -> Result<&[u8], Error> {
///     Ok(input.trim_ascii())
/// }
///
/// #[export]
/// pub fn upper(input: &[u8]) -> Result<Vec<u8>, Error> {
///     if input.is_empty() {
///         return Err(Error::new(1000, "empty input"));
///     }
///     Ok(input.to_ascii_uppercase())
/// }
///
/// // They stay ordinary Rust functions, testable natively.
/// assert_eq!(trim(b" hi ").unwrap(), b"hi");
/// assert_eq!(upper(b"hi").unwrap(), b"HI");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a bytes output",
    label = "a bytes export (input `&[u8]`) returns `Result<B, E>` where `B: AsRef<[u8]>` or `B` is `membrane_guest::Output`"
)]
pub trait BytesOutput: sealed::Sealed {
    /// Frames the bytes as the output envelope; the packed location for the host.
    #[doc(hidden)]
    fn into_packed(self) -> u64;
}

mod sealed {
    /// Only the implementations of this module are bytes outputs.
    pub trait Sealed {}
    impl<T: AsRef<[u8]>> Sealed for T {}
    impl Sealed for super::Output {}
}

impl<T: AsRef<[u8]>> BytesOutput for T {
    #[inline]
    fn into_packed(self) -> u64 {
        return_ok(self.as_ref())
    }
}

impl BytesOutput for Output {
    #[inline]
    fn into_packed(self) -> u64 {
        if self.resets != arena::resets() {
            return output_too_old();
        }
        self.packed
    }
}

#[cold]
#[inline(never)]
fn output_too_old() -> u64 {
    return_err(
        membrane_codec::ErrorCode::ENCODE_FAILED,
        "the output was made during an earlier call",
    )
}

/// Bytes already written as an output envelope in the running call's arena: returned
/// from a bytes export (`#[export] fn f(input: &[u8]) -> Result<Output, E>`), they reach
/// the host with no further copy.
///
/// For bytes that are only lent for a moment, such as a host function's response in the
/// `name_with` form of [`host_externs!`](crate::host_externs): copying them into an
/// `Output` there is the only copy they need, where a `Vec<u8>` would be copied once
/// into the vector and once more into the output envelope.
///
/// ```
/// use membrane_guest::{export, host_externs, Error, Output};
///
/// host_externs!(bytes: fetch);
///
/// /// Returns what the host's `fetch` answers, copied once.
/// #[export]
/// pub fn relay(input: &[u8]) -> Result<Output, Error> {
///     fetch_with(input, Output::copy_of)?
/// }
/// # // Off wasm32 there is no host: the call reports NOT_FOUND.
/// # assert!(relay(b"key").is_err());
/// ```
///
/// An `Output` is opaque (its bytes are not readable again) and belongs to the call
/// that made it: returned from a later call it is refused with an `ENCODE_FAILED`
/// error envelope.
#[derive(Debug)]
#[must_use]
pub struct Output {
    /// Where the envelope is, as the export returns it.
    packed: u64,
    /// [`arena::resets`] when it was written.
    resets: u32,
}

impl Output {
    /// The envelope the host just wrote into the arena for the call in progress (a
    /// response), handed on as it lies.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn in_place(envelope: &[u8]) -> Output {
        Output {
            packed: pack(envelope),
            resets: arena::resets(),
        }
    }

    /// Writes `bytes` as an output envelope in the arena (one copy, into uninitialised
    /// memory). Fails with `OUT_OF_MEMORY` when the arena cannot hold it.
    pub fn copy_of(bytes: &[u8]) -> Result<Output, Error> {
        let envelope = encode_bytes(bytes, Flags::NONE)?;
        Ok(Output {
            packed: pack(envelope),
            resets: arena::resets(),
        })
    }
}

/// A function `#[export]` exports in bytes mode, `fn(&[u8]) -> Result<B, E>`, seen for
/// one lifetime of its input. `export_bytes` asks for it for every lifetime, so the
/// function cannot keep the input past the call.
#[doc(hidden)]
pub trait BytesExport<'a> {
    /// What the function returns.
    type Bytes: BytesOutput;
    /// How it fails.
    type Error: Into<Error>;
    /// Calls it.
    fn call(self, input: &'a [u8]) -> Result<Self::Bytes, Self::Error>;
}

impl<'a, F, B, E> BytesExport<'a> for F
where
    F: FnOnce(&'a [u8]) -> Result<B, E>,
    B: BytesOutput,
    E: Into<Error>,
{
    type Bytes = B;
    type Error = E;

    #[inline(always)]
    fn call(self, input: &'a [u8]) -> Result<B, E> {
        self(input)
    }
}

/// Runs a bytes export: hands `f` the input payload, frames what it returns as the
/// output. Used by `#[export]` for functions whose input is `&[u8]`.
#[doc(hidden)]
#[inline]
pub fn export_bytes<F>(ptr: u32, len: u32, f: F) -> u64
where
    F: for<'a> BytesExport<'a>,
{
    // SAFETY: `#[export]` passes the arguments the host gave the export. The payload is
    // not used after this function returns: `f` accepts it for any lifetime, so it
    // cannot keep it, and what `f` returns is framed (copied, or its location taken)
    // and dropped before the return.
    let input = match unsafe { host_args(ptr, len) } {
        Ok(input) => input,
        Err(packed) => return packed,
    };
    match f.call(input) {
        Ok(bytes) => bytes.into_packed(),
        Err(e) => {
            let e = e.into();
            return_err(e.code, &e.message)
        }
    }
}
