//! The `#[export]` attribute of `membrane-guest`. Use it as `membrane_guest::export`.
//!
//! The expansion lives in the private `expand` module (plain code tested without a compiler run);
//! this file only adapts it to the proc-macro interface.

use proc_macro::TokenStream;

mod expand;

/// Turns `fn f(input: I) -> Result<O, E>` into a membrane export named `f`.
///
/// The function itself is kept unchanged (so it stays testable natively); on wasm32 an
/// `extern "C"` shim with the ABI signature `(ptr: u32, len: u32) -> u64` is exported
/// under the function's name. It decodes the input envelope and deserializes `I`
/// (postcard), calls `f`, and encodes `O` as the output envelope, or `E` (anything
/// `Into<membrane_guest::Error>`) as an error envelope. A function without parameters
/// takes `()` as its input.
///
/// `#[export(name = "other")]` exports under another name.
#[proc_macro_attribute]
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand::export(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}
