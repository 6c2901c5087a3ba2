//! Calling host functions: `host_externs!` and its runtime support.

use membrane_codec::Flags;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
#[cfg(target_arch = "wasm32")]
use membrane_codec::ErrorCode;

/// Declares host functions (import module `membrane_host`) and defines, for each name, a
/// safe typed wrapper `fn name<I, O>(input: &I) -> Result<O, membrane_guest::Error>`.
///
/// The input is serialized with postcard into a request envelope; the host's response
/// envelope is checked and deserialized as `O`; a host function that fails returns
/// `Err` with the host's code and message.
///
/// ```
/// membrane_guest::host_externs!(add, lookup);
///
/// fn sum() -> Result<u32, membrane_guest::Error> {
///     add::<(u32, u32), u32>(&(2, 3))
/// }
/// # // Off wasm32 there is no host: the call reports NOT_FOUND.
/// # assert!(sum().is_err());
/// ```
///
/// Give host functions names that differ from the module's own exports: both live in
/// one symbol namespace when the module is linked.
#[macro_export]
macro_rules! host_externs {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("Calls the host function `", stringify!($name), "`.")]
            #[allow(dead_code)]
            pub fn $name<I, O>(input: &I) -> ::core::result::Result<O, $crate::Error>
            where
                I: $crate::__rt::serde::Serialize + ?Sized,
                O: $crate::__rt::serde::de::DeserializeOwned,
            {
                #[cfg(target_arch = "wasm32")]
                {
                    #[link(wasm_import_module = "membrane_host")]
                    unsafe extern "C" {
                        fn $name(ptr: u32, len: u32) -> u64;
                    }
                    // SAFETY: the import reads the request envelope the runtime passes
                    // (a live arena slice) and returns a packed response location that
                    // `call_host` checks before use.
                    $crate::__rt::call_host(stringify!($name), |p, l| unsafe { $name(p, l) }, input)
                }
                #[cfg(not(target_arch = "wasm32"))]
                {
                    $crate::__rt::call_host(stringify!($name), |_, _| 0, input)
                }
            }
        )*
    };
}

/// Sends `input` to a host function through `import` and decodes its response.
#[doc(hidden)]
pub fn call_host<I, O>(
    name: &str,
    import: impl FnOnce(u32, u32) -> u64,
    input: &I,
) -> Result<O, Error>
where
    I: Serialize + ?Sized,
    O: DeserializeOwned,
{
    #[cfg(target_arch = "wasm32")]
    {
        let request = crate::export::encode_value(input, Flags::EXPECTS_RESPONSE)?;
        let packed = import(request.as_ptr() as u32, request.len() as u32);
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
        // response into arena memory it obtained from `__membrane_alloc` for this call.
        let bytes = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
        let envelope = crate::export::codec()
            .decode(bytes)
            .map_err(|e| response_error(name, &e))?;
        if envelope.is_error() {
            return Err(host_error(name, &envelope));
        }
        match envelope.uncompressed_payload() {
            Some(payload) => {
                membrane_codec::from_payload(payload).map_err(|e| response_error(name, &e))
            }
            None => {
                let mut scratch = alloc::vec::Vec::new();
                envelope
                    .value(&mut scratch)
                    .map_err(|e| response_error(name, &e))
            }
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (import, input, Flags::NONE);
        Err(Error::new(
            membrane_codec::ErrorCode::NOT_FOUND,
            alloc::format!("host function {name} is only available inside a membrane host"),
        ))
    }
}

/// The error for a response envelope that does not decode.
#[cfg(target_arch = "wasm32")]
#[cold]
#[inline(never)]
fn response_error(name: &str, e: &membrane_codec::DecodeError) -> Error {
    Error::new(
        ErrorCode::HOST_FUNCTION_FAILED,
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
