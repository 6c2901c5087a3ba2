//! Exported functions: reading the input envelope and writing the output envelope.

use alloc::format;
use core::mem::MaybeUninit;
use membrane_codec::{
    Codec, CodecConfig, DecodeError, Envelope, ErrorCode, Flags, HEADER_LEN, Header, ShortRuns,
    envelope_checksum, write_run,
};
use membrane_types::pack_ptr_len;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::arena;
use crate::crc::HostCrc;
use crate::error::Error;
use crate::state::LAST_INPUT;

/// The codec a guest uses: host-computed checksums, no compression of outputs.
#[inline]
pub(crate) fn codec() -> Codec<HostCrc> {
    Codec::with_checksum(CodecConfig::default(), HostCrc)
}

/// Decodes an envelope the host wrote into this instance's memory for the exchange in
/// progress: the input of the running export, or the response of the host function
/// being called. The one place the guest's trust rule is decided.
///
/// The checksum is not verified (`Codec::decode_trusted`): the host owns that memory
/// for the duration, and a check here would run through the host's own
/// `membrane.crc32`, so the host would be checking itself. Every other check of
/// `Codec::decode` is made. With the feature `verify-host-envelopes` the checksum is
/// verified too, for debugging a new host implementation.
#[inline(always)]
pub(crate) fn decode_from_host(bytes: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    if cfg!(feature = "verify-host-envelopes") {
        codec().decode(bytes)
    } else {
        codec().decode_trusted(bytes)
    }
}

/// Runs a typed export: decodes the input as `I`, calls `f`, encodes its result.
/// Used by `#[export]`; errors of every stage become error envelopes.
#[doc(hidden)]
pub fn export_typed<I, O, E>(ptr: u32, len: u32, f: impl FnOnce(I) -> Result<O, E>) -> u64
where
    I: DeserializeOwned,
    O: Serialize,
    E: Into<Error>,
{
    // SAFETY: `#[export]` passes the arguments the host gave the export.
    let payload = match unsafe { host_args(ptr, len) } {
        Ok(payload) => payload,
        Err(packed) => return packed,
    };
    let input: I = match membrane_codec::from_payload(payload) {
        Ok(input) => input,
        Err(e) => {
            return return_err(
                ErrorCode::INVALID_INPUT,
                &format!("input does not deserialize: {e}"),
            );
        }
    };
    match f(input) {
        Ok(output) => return_value(&output),
        Err(e) => {
            let e = e.into();
            return_err(e.code, &e.message)
        }
    }
}

/// Checks the input envelope of a raw export and returns its payload.
///
/// The envelope is checked as the host wrote it for this call: everything but its
/// checksum, unless the feature `verify-host-envelopes` is on (see the crate's feature
/// table).
///
/// On failure returns `Err` with a packed error envelope ([`ErrorCode::INVALID_INPUT`])
/// that the export should return as it is.
///
/// # Safety
///
/// `ptr` and `len` must be the arguments the host passed to the running export, and the
/// returned slice must not be used after the export returns (the arena that holds it is
/// reset by the next top-level call).
// Always inlined: as a call it returns its `Result` through memory on the shadow stack
// and pays a second prologue, epoch check and register save, which cost an export
// about as much as checking the envelope.
#[inline(always)]
pub unsafe fn host_args<'call>(ptr: u32, len: u32) -> Result<&'call [u8], u64> {
    #[cfg(feature = "std")]
    crate::panic::install_panic_hook();
    let (ptr, len) = (ptr as usize, len as usize);
    if !input_in_memory(ptr, len) {
        return Err(input_error("input envelope is outside guest memory"));
    }
    // SAFETY: the region is inside linear memory (checked above) and, per the ABI, is
    // the envelope the host wrote into memory it obtained from `__membrane_alloc` for
    // this call; nothing else writes it while the call runs.
    let bytes: &'call [u8] = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
    match decode_from_host(bytes) {
        Ok(envelope) if !envelope.is_error() => match envelope.uncompressed_payload() {
            Some(payload) => {
                // An envelope with flags (`EXPECTS_RESPONSE`) is no output to hand back.
                let last = if envelope.flags() == Flags::NONE {
                    (payload.as_ptr() as usize, payload.len())
                } else {
                    (0, 0)
                };
                LAST_INPUT.0.set(last);
                Ok(payload)
            }
            None => decompress_input(&envelope),
        },
        Ok(_) => Err(input_error("input envelope has the ERROR flag")),
        Err(e) => Err(input_decode_error(&e)),
    }
}

/// The packed `INVALID_INPUT` error envelope for a bad input.
#[cold]
#[inline(never)]
fn input_error(message: &str) -> u64 {
    return_err(ErrorCode::INVALID_INPUT, message)
}

#[cold]
#[inline(never)]
fn input_decode_error(e: &DecodeError) -> u64 {
    return_err(ErrorCode::INVALID_INPUT, &format!("input envelope: {e}"))
}

/// Decompresses a compressed input payload into the arena.
#[cold]
#[inline(never)]
fn decompress_input<'call>(envelope: &Envelope<'_>) -> Result<&'call [u8], u64> {
    // The payload is a copy: no input envelope to hand back in place.
    LAST_INPUT.0.set((0, 0));
    let Some(buf) = arena::alloc_zeroed(envelope.payload_len()) else {
        return Err(return_err(
            ErrorCode::OUT_OF_MEMORY,
            "no memory to decompress the input",
        ));
    };
    match envelope.decompress_into(buf) {
        Ok(n) => Ok(&buf[..n]),
        Err(e) => Err(input_decode_error(&e)),
    }
}

#[cfg(target_arch = "wasm32")]
fn input_in_memory(ptr: usize, len: usize) -> bool {
    ptr != 0
        && ptr
            .checked_add(len)
            .is_some_and(|end| end <= crate::sys::memory_len())
}

#[cfg(not(target_arch = "wasm32"))]
fn input_in_memory(_ptr: usize, _len: usize) -> bool {
    // Off wasm32 there is no host and no u32 address space: nothing can be an input.
    false
}

/// Encodes `payload` as the export's successful output and returns the packed
/// pointer/length to return to the host.
///
/// Returning the input payload unchanged costs nothing: the input envelope is handed
/// back in place.
#[inline]
pub fn return_ok(payload: &[u8]) -> u64 {
    let (last_ptr, last_len) = LAST_INPUT.0.get();
    if payload.as_ptr() as usize == last_ptr && payload.len() == last_len {
        // `payload` is that of an input envelope without flags that `host_args` checked;
        // its header, just before it, is still in the arena, untouched (only the payload
        // was borrowed). `last_ptr` is not 0 here, so it is at least `HEADER_LEN`.
        let start = last_ptr - HEADER_LEN;
        return pack_ptr_len(start as u32, (HEADER_LEN + last_len) as u32);
    }
    return_copy(payload)
}

/// Encodes `payload` into a new output envelope in the arena.
#[inline(never)]
fn return_copy(payload: &[u8]) -> u64 {
    match encode_bytes(payload, Flags::NONE) {
        Ok(envelope) => pack(envelope),
        Err(e) => return_err(e.code, &e.message),
    }
}

/// Serializes `value` (postcard) straight into an output envelope in the arena.
pub(crate) fn return_value<O: Serialize + ?Sized>(value: &O) -> u64 {
    match encode_value(value, Flags::NONE) {
        Ok(envelope) => pack(envelope),
        Err(e) => return_err(e.code, &e.message),
    }
}

/// Writes an envelope carrying a copy of `payload` into a new arena allocation: the
/// payload is copied once, into uninitialised memory (no zero-fill, which would be a
/// `memory.fill` call out of the wasm code and a second pass over the bytes).
pub(crate) fn encode_bytes(payload: &[u8], flags: Flags) -> Result<&'static [u8], Error> {
    let size = payload.len();
    let total = envelope_len(size).ok_or_else(too_large)?;
    let Some(start) = arena::alloc_uninit(total) else {
        return Err(no_memory());
    };
    let start = start.as_ptr();
    // SAFETY: `start` is a fresh arena allocation of `HEADER_LEN + size` bytes, so its
    // body is valid for writes of `size` bytes, and `payload` is a live shared slice
    // that cannot overlap memory only now handed out. After the copy the body is
    // initialised, `size` fits a u32 (`envelope_len`) and nothing refers to the
    // allocation, as `seal` asks; after `seal` all of it is initialised, and the arena
    // keeps it unchanged until the next reset.
    unsafe {
        write_run(uninit(start.add(HEADER_LEN), size), payload);
        seal(start, size, flags);
        Ok(core::slice::from_raw_parts(start, total))
    }
}

/// Serializes `value` into a new envelope in the arena, without an intermediate copy.
///
/// The envelope is written straight into uninitialised arena memory (no zero-fill,
/// which would be a `memory.fill` call out of the wasm code).
pub(crate) fn encode_value<O: Serialize + ?Sized>(
    value: &O,
    flags: Flags,
) -> Result<&'static [u8], Error> {
    let size = postcard::experimental::serialized_size(value).map_err(serialize_error)?;
    let total = envelope_len(size).ok_or_else(too_large)?;
    let Some(start) = arena::alloc_uninit(total) else {
        return Err(no_memory());
    };
    let start = start.as_ptr();
    // SAFETY: `start` is a fresh arena allocation of `HEADER_LEN + size` bytes, so the
    // body (its last `size` bytes) is valid for writes of `size` bytes, and nothing
    // else refers to it.
    let body = unsafe { uninit(start.add(HEADER_LEN), size) };
    let written =
        postcard::serialize_with_flavor(value, ShortRuns::new(body)).map_err(serialize_error)?;
    if written != size {
        // `serialized_size` and the serializer disagree: a broken `Serialize` impl.
        return Err(Error::new(
            ErrorCode::ENCODE_FAILED,
            "output serialized to a different size than announced",
        ));
    }
    // SAFETY: the serializer initialised all `size` bytes of the body (`written == size`,
    // and `ShortRuns` writes its bytes in order from the start), `size` fits a u32
    // (`envelope_len`) and nothing refers to the allocation, as `seal` asks; after it
    // all of the allocation is initialised, and the arena keeps it unchanged until the
    // next reset.
    unsafe {
        seal(start, size, flags);
        Ok(core::slice::from_raw_parts(start, total))
    }
}

/// The length of an envelope carrying `size` payload bytes, or `None` when it cannot be
/// framed: the payload length is a u32, and so is the location the host is given.
#[inline]
fn envelope_len(size: usize) -> Option<usize> {
    let total = HEADER_LEN.checked_add(size)?;
    u32::try_from(total).ok()?;
    Some(total)
}

/// Encodes an envelope into the arena whose payload is `prefix` (postcard) followed by
/// `payload` as it is: one pass over each, no intermediate buffer.
#[cfg(target_arch = "wasm32")]
pub(crate) fn encode_prefixed<P: Serialize + ?Sized>(
    prefix: &P,
    payload: &[u8],
    flags: Flags,
) -> Result<&'static [u8], Error> {
    let head = postcard::experimental::serialized_size(prefix).map_err(serialize_error)?;
    let size = head.checked_add(payload.len()).ok_or_else(too_large)?;
    let total = envelope_len(size).ok_or_else(too_large)?;
    let Some(start) = arena::alloc_uninit(total) else {
        return Err(no_memory());
    };
    let start = start.as_ptr();
    // SAFETY: `start` is a fresh arena allocation of `HEADER_LEN + size` bytes, so the
    // body (its last `size` bytes) is valid for writes, and nothing else refers to it.
    let body = unsafe { uninit(start.add(HEADER_LEN), size) };
    let (head_region, tail) = body.split_at_mut(head);
    let written = postcard::serialize_with_flavor(prefix, ShortRuns::new(head_region))
        .map_err(serialize_error)?;
    if written != head {
        return Err(Error::new(
            ErrorCode::ENCODE_FAILED,
            "request serialized to a different size than announced",
        ));
    }
    write_run(tail, payload);
    // SAFETY: the serializer initialised the first `head` bytes of the body (`written ==
    // head`, in order from the start) and `write_run` the other `payload.len()`; `size`
    // fits a u32 (`envelope_len`) and nothing refers to the allocation (`body` is not
    // used again), as `seal` asks; the arena keeps it unchanged until the next reset.
    unsafe {
        seal(start, size, flags);
        Ok(core::slice::from_raw_parts(start, total))
    }
}

/// Writes the header of an envelope whose payload, `size` bytes, is already in place
/// right after it: payload length, flags and the checksum over both.
///
/// # Safety
///
/// `start` must be valid for writes of `HEADER_LEN` bytes followed by `size`
/// initialised bytes valid for reads; no `&mut` may point into those bytes and no
/// reference into the header's; `size` must fit a u32.
#[inline(always)]
pub(crate) unsafe fn seal(start: *mut u8, size: usize, flags: Flags) {
    // SAFETY: the payload's `size` bytes are initialised and not written while the
    // slice lives (the caller's promise).
    let body = unsafe { core::slice::from_raw_parts(start.add(HEADER_LEN), size) };
    let mut header = Header::new(flags, size as u32, 0);
    header.checksum = envelope_checksum(&HostCrc, &header, body);
    // SAFETY: the first `HEADER_LEN` bytes are valid for writes and referenced by
    // nothing (the caller's promise), and do not overlap the header's bytes on the
    // stack.
    unsafe { core::ptr::copy_nonoverlapping(header.to_bytes().as_ptr(), start, HEADER_LEN) };
}

#[cold]
#[inline(never)]
fn too_large() -> Error {
    Error::new(
        ErrorCode::ENCODE_FAILED,
        "output is larger than an envelope can carry",
    )
}

#[cold]
#[inline(never)]
fn no_memory() -> Error {
    Error::new(ErrorCode::OUT_OF_MEMORY, "no memory for the output")
}

#[cold]
#[inline(never)]
pub(crate) fn serialize_error(e: postcard::Error) -> Error {
    Error::new(
        ErrorCode::ENCODE_FAILED,
        format!("output does not serialize: {e}"),
    )
}

/// The `len` bytes at `start` as a region a [`ShortRuns`] or [`write_run`] may write,
/// initialised or not.
///
/// # Safety
///
/// `start` must be valid for writes of `len` bytes, and nothing else may refer to them
/// while the slice lives.
#[inline(always)]
pub(crate) unsafe fn uninit<'a>(start: *mut u8, len: usize) -> &'a mut [MaybeUninit<u8>] {
    // SAFETY: the caller's promise; `MaybeUninit<u8>` has the layout of `u8` and needs no
    // initialisation.
    unsafe { core::slice::from_raw_parts_mut(start.cast::<MaybeUninit<u8>>(), len) }
}

/// Encodes an error envelope with `code` and `message` as the export's output and
/// returns the packed pointer/length to return to the host.
pub fn return_err(code: impl Into<ErrorCode>, message: &str) -> u64 {
    match encode_error(code.into(), message) {
        Some(envelope) => pack(envelope),
        None => out_of_memory(),
    }
}

/// Writes an error envelope into a new arena allocation, uninitialised until written
/// (as in [`encode_bytes`]); `None` when there is no memory for it.
fn encode_error(code: ErrorCode, message: &str) -> Option<&'static [u8]> {
    let size = membrane_codec::error_payload_len(message);
    let total = envelope_len(size)?;
    let start = arena::alloc_uninit(total)?.as_ptr();
    // SAFETY: `start` is a fresh arena allocation of `HEADER_LEN + size` bytes: its body
    // holds the 4 bytes of the code followed by the message, and neither source (a
    // local array, a live `&str`) can overlap memory only now handed out. The body is
    // then initialised, `size` fits a u32 and nothing refers to the allocation, as
    // `seal` asks; after it the whole allocation is initialised and stays unchanged
    // until the next reset.
    unsafe {
        let body = uninit(start.add(HEADER_LEN), size);
        write_run(body, &code.0.to_le_bytes());
        write_run(&mut body[4..], message.as_bytes());
        seal(start, size, Flags::ERROR);
        Some(core::slice::from_raw_parts(start, total))
    }
}

/// The packed location of an envelope in guest memory.
#[inline]
pub(crate) fn pack(envelope: &[u8]) -> u64 {
    pack_ptr_len(envelope.as_ptr() as usize as u32, envelope.len() as u32)
}

/// An `OUT_OF_MEMORY` error envelope that needs no allocation: it lives in a static
/// buffer, written when the arena cannot even hold an error.
fn out_of_memory() -> u64 {
    use crate::state::{OUT_OF_MEMORY, OUT_OF_MEMORY_LEN};
    const MESSAGE: &str = "guest out of memory";
    const _: () = assert!(HEADER_LEN + 4 + MESSAGE.len() <= OUT_OF_MEMORY_LEN);
    // SAFETY: single-threaded (see `state`), and the buffer is only written here; the
    // host reads it after the export returned.
    let buf = unsafe { &mut *OUT_OF_MEMORY.0.get() };
    match codec().encode_error_into(buf, ErrorCode::OUT_OF_MEMORY, MESSAGE) {
        Ok(n) => pack(&buf[..n]),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::{codec, decode_from_host, encode_bytes, encode_error, encode_value};
    use membrane_codec::{DecodeError, ErrorCode, Flags};

    /// Envelopes written into uninitialised arena memory are byte for byte what the
    /// codec writes. (The arena is a single-threaded global: every test that allocates
    /// in it is in this one function.)
    #[test]
    fn arena_envelopes_match_the_codec() {
        for n in [0usize, 1, 3, 15, 16, 63, 64, 1000, 20_000] {
            let payload: alloc::vec::Vec<u8> = (0..n).map(|i| (i * 13 + 5) as u8).collect();
            for flags in [Flags::NONE, Flags::EXPECTS_RESPONSE] {
                let want = codec().encode(&payload, flags).unwrap();
                assert_eq!(encode_bytes(&payload, flags).unwrap(), &want[..], "len {n}");
                let value = (n as u32, payload.as_slice());
                let want = codec().encode_value(&value, flags).unwrap();
                assert_eq!(encode_value(&value, flags).unwrap(), &want[..], "len {n}");
            }
        }
        for message in [
            "",
            "no",
            "a message longer than sixteen bytes",
            &"é".repeat(500),
        ] {
            let want = codec().encode_error(ErrorCode::DENIED, message).unwrap();
            assert_eq!(encode_error(ErrorCode::DENIED, message).unwrap(), &want[..]);
        }
        // A lifecycle hook returns 0 when it succeeds, an error envelope's location
        // (never 0) when it fails.
        use crate::hook::run_hook;
        assert_eq!(run_hook(|| Ok::<(), crate::Error>(())), 0);
        assert_ne!(run_hook(|| Err::<(), _>("no")), 0);
    }

    /// Envelopes from the host are taken without their checksum verified, unless the
    /// feature `verify-host-envelopes` asks for it (CI tests with and without it);
    /// every other check applies either way.
    #[test]
    fn host_envelopes_are_verified_only_with_the_feature() {
        let mut bytes = codec().encode(b"from the host", Flags::NONE).unwrap();
        bytes[9] ^= 0x10;
        let decoded = decode_from_host(&bytes);
        if cfg!(feature = "verify-host-envelopes") {
            assert!(
                matches!(decoded, Err(DecodeError::ChecksumMismatch { .. })),
                "{decoded:?}"
            );
        } else {
            let envelope = decoded.unwrap();
            assert_eq!(envelope.uncompressed_payload(), Some(&b"from the host"[..]));
        }
        bytes[0] = b'X';
        assert!(matches!(
            decode_from_host(&bytes),
            Err(DecodeError::BadMagic { .. })
        ));
        assert!(matches!(
            decode_from_host(&bytes[..11]),
            Err(DecodeError::TooShort { len: 11 })
        ));
    }
}
