//! Calling host functions: the runtime support of `host_externs!`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
#[cfg(target_arch = "wasm32")]
use membrane_codec::{ErrorCode, Flags};

// The scratch buffer: a request that fits is serialized straight into it (no sizing
// pass, no arena allocation), and the host writes the response over it (no allocation
// call back into the guest). Reusing one buffer is sound because the host reads the
// whole request before the host function runs and writes the response only after it
// returns (`docs/abi.md` §4): a host function that calls back into this instance, whose
// code calls host functions in turn, is done with the buffer before the outer response
// is written. No Rust reference into the buffer lives across an import call (see
// `call_host`).
#[cfg(target_arch = "wasm32")]
use crate::state::{SCRATCH, SCRATCH_BUSY, SCRATCH_LEN};

/// Marks [`SCRATCH`] busy for one `call_host`, restoring the earlier state when dropped.
#[cfg(target_arch = "wasm32")]
struct Claim {
    /// The scratch was busy already: this call is nested in another's value.
    nested: bool,
}

#[cfg(target_arch = "wasm32")]
impl Claim {
    fn take() -> Claim {
        let nested = SCRATCH_BUSY.0.replace(true);
        Claim { nested }
    }
}

#[cfg(target_arch = "wasm32")]
impl Drop for Claim {
    fn drop(&mut self) {
        SCRATCH_BUSY.0.set(self.nested);
    }
}

/// Encodes the request envelope for `input`: into [`SCRATCH`] when it fits, else into
/// the arena. Returns its location. The caller holds the scratch (see [`Claim`]).
#[cfg(target_arch = "wasm32")]
fn encode_request<I: Serialize + ?Sized>(input: &I) -> Result<(u32, u32), Error> {
    use membrane_codec::HEADER_LEN;

    let start = SCRATCH.0.get().cast::<u8>();
    // SAFETY: single-threaded, and no reference into the buffer is live (see the scratch
    // buffer's note above): this one is the only one until the serializer returns.
    let body = unsafe { &mut (&mut *SCRATCH.0.get())[HEADER_LEN..] };
    let size = match postcard::serialize_with_flavor(input, membrane_codec::ShortRuns::new(body)) {
        Ok(size) => size,
        Err(postcard::Error::SerializeBufferFull) => {
            let request = crate::export::encode_value(input, Flags::EXPECTS_RESPONSE)?;
            return Ok((request.as_ptr() as u32, request.len() as u32));
        }
        Err(e) => return Err(crate::export::serialize_error(e)),
    };
    // SAFETY: the serializer wrote the first `size` bytes of the body; `size` is less
    // than `SCRATCH_LEN`, so it fits a u32; no reference into the buffer is live (see
    // the scratch buffer's note above).
    unsafe { crate::export::seal(start, size, Flags::EXPECTS_RESPONSE) };
    Ok((start as u32, (HEADER_LEN + size) as u32))
}

/// Writes the request envelope carrying `input` as it is: into [`SCRATCH`] when this
/// call holds it (not `nested`) and the envelope fits, else into the arena. Returns its
/// location.
#[cfg(target_arch = "wasm32")]
fn encode_bytes_request(input: &[u8], nested: bool) -> Result<(u32, u32), Error> {
    use membrane_codec::HEADER_LEN;

    let n = input.len();
    if !nested && n <= SCRATCH_LEN - HEADER_LEN {
        let start = SCRATCH.0.get().cast::<u8>();
        // SAFETY: the envelope, `HEADER_LEN + n <= SCRATCH_LEN` bytes, fits the buffer,
        // which this call holds (see `Claim`). No reference into the buffer is live: one
        // exists only while a call that holds the buffer reads its response, and a host
        // call made then is nested, so `input` does not overlap the buffer either. After
        // the copy the body is initialised and `n` fits a u32, as `seal` asks.
        unsafe {
            membrane_codec::write_run(&mut (&mut *SCRATCH.0.get())[HEADER_LEN..], input);
            crate::export::seal(start, n, Flags::EXPECTS_RESPONSE);
        }
        return Ok((start as u32, (HEADER_LEN + n) as u32));
    }
    let request = crate::export::encode_bytes(input, Flags::EXPECTS_RESPONSE)?;
    Ok((request.as_ptr() as u32, request.len() as u32))
}

/// Sends `input` to a host function through `import` and decodes its response.
#[doc(hidden)]
#[inline]
pub fn call_host<I, O>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    input: &I,
) -> Result<O, Error>
where
    I: Serialize + ?Sized,
    O: DeserializeOwned,
{
    call_host_decoding(name, import, input, |payload| {
        membrane_codec::from_payload(payload).map_err(|e| response_error(name, &e))
    })
}

/// Sends `input` (postcard) to a host function through `import` and hands `read` the
/// response payload where it lies (a response that borrows from it, read without a
/// copy of its bytes). `read` runs while this call holds [`SCRATCH`], as in
/// [`call_host_bytes`].
#[inline]
pub(crate) fn call_host_with<I: Serialize + ?Sized, R>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    input: &I,
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    call_host_decoding(name, import, input, |payload| Ok(read(payload)))
}

/// Sends `input` (postcard) to a host function through `import` and returns what
/// `decode` makes of the response payload where it lies: [`call_host`] and
/// [`call_host_with`] in one body, with no `Result` in a `Result` (which cost a typed
/// host call about 65 instructions in the guest).
#[inline(always)]
fn call_host_decoding<I: Serialize + ?Sized, R>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    input: &I,
    decode: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        exchange(
            name,
            import,
            |nested| {
                if nested {
                    let request = crate::export::encode_value(input, Flags::EXPECTS_RESPONSE)?;
                    Ok((request.as_ptr() as u32, request.len() as u32))
                } else {
                    encode_request(input)
                }
            },
            decode,
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (import, input, decode);
        Err(not_in_a_host(name))
    }
}

/// Sends `input` as the request payload to a host function through `import` and hands
/// the response payload to `read` where it lies.
///
/// `read` runs while this call still holds [`SCRATCH`] (the response may be in it), so a
/// host call made by `read` goes through the arena, like one made by a `Deserialize`
/// impl.
#[doc(hidden)]
#[inline]
pub fn call_host_bytes<R>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    input: &[u8],
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        exchange(
            name,
            import,
            |nested| encode_bytes_request(input, nested),
            |payload| Ok(read(payload)),
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (import, input, read);
        Err(not_in_a_host(name))
    }
}

/// Sends a request payload made of `prefix` (postcard) followed by `input` as it is to
/// the import `import`, and hands `read` the response payload where it lies. The
/// request goes into the arena (one pass over `input`); the response into the scratch
/// buffer when it fits.
#[inline]
pub(crate) fn call_host_prefixed<P: Serialize + ?Sized, R>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    prefix: &P,
    input: &[u8],
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        exchange(
            name,
            import,
            |_| {
                let request =
                    crate::export::encode_prefixed(prefix, input, Flags::EXPECTS_RESPONSE)?;
                Ok((request.as_ptr() as u32, request.len() as u32))
            },
            |payload| Ok(read(payload)),
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (import, prefix, input, read);
        Err(not_in_a_host(name))
    }
}

/// Sends a request made of `prefix` (postcard) and `input` to the import `import`, and
/// has the response written into the arena (a response buffer there, or memory the host
/// allocates), where it stays until the next call: a successful response envelope is
/// returned as an [`Output`] as it lies, so an export hands it on as its own output with
/// no copy and no second checksum.
pub(crate) fn call_host_to_output<P: Serialize + ?Sized>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    prefix: &P,
    input: &[u8],
) -> Result<crate::Output, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        let claim = Claim::take();
        let request = crate::export::encode_prefixed(prefix, input, Flags::EXPECTS_RESPONSE)?;
        // A response buffer in the arena, as large as an answer of the input's size (an
        // echo, a transformation): the host writes such a response there and needs no
        // allocation call back into this module; a larger one goes where the host
        // allocates it, in the arena too. Either way it stays put until the next call.
        let (resp_ptr, resp_cap) = input
            .len()
            .checked_add(membrane_codec::HEADER_LEN)
            .and_then(|cap| Some((crate::arena::alloc_uninit(cap)?, cap)))
            .map_or((0, 0), |(at, cap)| (at.as_ptr() as u32, cap as u32));
        SCRATCH_BUSY.0.set(claim.nested);
        let packed = import(
            request.as_ptr() as u32,
            request.len() as u32,
            resp_ptr,
            resp_cap,
        );
        SCRATCH_BUSY.0.set(true);
        let bytes = response_bytes(name, packed)?;
        let envelope =
            crate::export::decode_from_host(bytes).map_err(|e| response_error(name, &e))?;
        if envelope.is_error() {
            return Err(host_error(name, &envelope));
        }
        drop(claim);
        Ok(crate::Output::in_place(bytes))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (import, prefix, input);
        Err(not_in_a_host(name))
    }
}

/// The response envelope at the packed location `packed` the host returned, checked to
/// lie in guest memory.
#[cfg(target_arch = "wasm32")]
fn response_bytes(name: &str, packed: u64) -> Result<&'static [u8], Error> {
    let (ptr, len) = membrane_types::unpack_ptr_len(packed);
    let (ptr, len) = (ptr as usize, len as usize);
    if ptr == 0
        || ptr
            .checked_add(len)
            .is_none_or(|end| end > crate::sys::memory_len())
    {
        return Err(Error::new(
            ErrorCode::HOST_FUNCTION_FAILED,
            alloc::format!("host function {name} returned a response outside guest memory"),
        ));
    }
    // SAFETY: inside linear memory (checked above); per the ABI the host wrote the
    // response into memory it obtained from `__membrane_alloc` for this call (or the
    // response buffer), which nothing writes until the arena is reset by the next
    // top-level call, or the buffer is reused by the next host call: a caller holds the
    // slice no longer than that.
    Ok(unsafe { core::slice::from_raw_parts(ptr as *const u8, len) })
}

/// One host call: holds [`SCRATCH`] (see [`Claim`]) while `write_request` writes the
/// request (told whether the call is nested in another's, then it must not use the
/// scratch) and while `read_response` reads the response payload; the host writes the
/// response into the scratch when the call is not nested and it fits.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn exchange<R>(
    name: &str,
    import: impl FnOnce(u32, u32, u32, u32) -> u64,
    write_request: impl FnOnce(bool) -> Result<(u32, u32), Error>,
    read_response: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    let claim = Claim::take();
    let (req_ptr, req_len) = write_request(claim.nested)?;
    let (resp_ptr, resp_cap) = if claim.nested {
        (0, 0)
    } else {
        (SCRATCH.0.get() as u32, SCRATCH_LEN as u32)
    };
    // The host reads the request before any code of this module runs again, and
    // writes the response after the function's nested calls are done: while the
    // import runs, the scratch is as free as it was before this call.
    SCRATCH_BUSY.0.set(claim.nested);
    let packed = import(req_ptr, req_len, resp_ptr, resp_cap);
    SCRATCH_BUSY.0.set(true);
    // Nothing writes the response until `claim` is dropped (see `SCRATCH_BUSY`), after
    // `read_response`.
    let bytes = response_bytes(name, packed)?;
    let envelope = crate::export::decode_from_host(bytes).map_err(|e| response_error(name, &e))?;
    if envelope.is_error() {
        return Err(host_error(name, &envelope));
    }
    let result = match envelope.uncompressed_payload() {
        Some(payload) => read_response(payload),
        None => {
            let mut scratch = alloc::vec::Vec::new();
            let payload = envelope
                .payload(&mut scratch)
                .map_err(|e| response_error(name, &e))?;
            read_response(payload)
        }
    };
    drop(claim);
    result
}

/// The error of a host call made off wasm32, where there is no host.
#[cfg(not(target_arch = "wasm32"))]
#[cold]
fn not_in_a_host(name: &str) -> Error {
    Error::new(
        membrane_codec::ErrorCode::NOT_FOUND,
        alloc::format!("host function {name} is only available inside a membrane host"),
    )
}

/// The error for a response envelope or payload that does not decode.
#[cold]
#[inline(never)]
pub(crate) fn response_error(name: &str, e: &membrane_codec::DecodeError) -> Error {
    Error::new(
        membrane_codec::ErrorCode::HOST_FUNCTION_FAILED,
        alloc::format!("host function {name} response: {e}"),
    )
}

/// The error a host function answered with (an error envelope).
#[cfg(target_arch = "wasm32")]
#[cold]
#[inline(never)]
fn host_error(name: &str, envelope: &membrane_codec::Envelope<'_>) -> Error {
    let mut scratch = alloc::vec::Vec::new();
    match envelope.error(&mut scratch) {
        Some(Ok(error)) => Error::new(error.code, error.message),
        Some(Err(e)) => response_error(name, &e),
        None => response_error(name, &membrane_codec::DecodeError::MalformedErrorPayload),
    }
}
