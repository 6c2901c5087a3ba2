//! The `#[export]`, `#[start]`, `#[stop]` and `#[on_message]` attributes and the
//! `host_externs!` macro of `membrane-guest`. Use them as `membrane_guest::export`,
//! `membrane_guest::start`, `membrane_guest::stop`, `membrane_guest::on_message` and
//! `membrane_guest::host_externs!`.
//!
//! The expansions live in the private `expand`, `hook`, `message` and `host_externs`
//! modules (plain
//! code tested without a compiler run); this file only adapts them to the proc-macro
//! interface.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod expand;
mod hook;
mod host_externs;
mod message;

/// Turns `fn f(input: I) -> Result<O, E>` into a membrane export named `f`.
///
/// The function itself is kept unchanged (so it stays testable natively); on wasm32 an
/// `extern "C"` shim with the ABI signature `(ptr: u32, len: u32) -> u64` is exported
/// under the function's name. It decodes the input envelope and deserializes `I`
/// (postcard), calls `f`, and encodes `O` as the output envelope, or `E` (anything
/// `Into<membrane_guest::Error>`) as an error envelope. A function without parameters
/// takes `()` as its input.
///
/// **Bytes mode**: when the input type is written `&[u8]`, `fn f(input: &[u8]) ->
/// Result<B, E>`, there is no postcard either way: `f` is handed the payload where it
/// lies, and the bytes it returns become the output payload. `B` is any `AsRef<[u8]>`
/// (`Vec<u8>`, `&[u8]` borrowed from the input, `&'static [u8]`) or a
/// `membrane_guest::Output` (trait `membrane_guest::BytesOutput`). Returning the input
/// slice itself costs no copy; other bytes are copied once into the output envelope.
/// A function without parameters is typed whatever it returns.
///
/// `#[export(name = "other")]` exports under another name.
#[proc_macro_attribute]
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand::export(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Turns `fn f() -> Result<(), E>` into the module's start hook: on wasm32, the export
/// `__membrane_start` (`docs/abi.md` §8) calls `f` and returns 0 on `Ok`, or an error
/// envelope with `E`'s code and message (`E`: anything `Into<membrane_guest::Error>`).
///
/// A membrane runtime runs it on every instance it makes, before the instance serves a
/// call; its error refuses the module (or fails the call the instance was made for). The
/// function itself is kept unchanged. At most one per module: a second is a duplicate
/// export when the module is linked.
#[proc_macro_attribute]
pub fn start(attr: TokenStream, item: TokenStream) -> TokenStream {
    match hook::hook(hook::Hook::Start, attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Turns `fn f() -> Result<(), E>` into the module's stop hook: on wasm32, the export
/// `__membrane_stop` (`docs/abi.md` §8), returning like `#[start]`'s.
///
/// A membrane runtime runs it on every started instance it drops (module removed or
/// swapped out, runtime dropped, after each call of a fresh-per-call module), unless a
/// failure poisoned the instance; its error is logged and counted by the host. At most
/// one per module.
#[proc_macro_attribute]
pub fn stop(attr: TokenStream, item: TokenStream) -> TokenStream {
    match hook::hook(hook::Hook::Stop, attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Turns `fn f(msg: membrane_guest::bus::Message) -> Result<(), E>` into the module's
/// message handler: on wasm32, the export `__membrane_message` (`docs/abi.md` §10), a
/// typed export whose input is the message (postcard `(from, channel, payload)`) and
/// whose output is `()`; `E` is anything `Into<membrane_guest::Error>`.
///
/// A membrane runtime delivers the module's queued bus messages to it, one call per
/// message; nothing else may call it. The function itself is kept unchanged. At most
/// one per module: a second is a duplicate export when the module is linked.
#[proc_macro_attribute]
pub fn on_message(attr: TokenStream, item: TokenStream) -> TokenStream {
    match message::on_message(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Declares host functions (import module `membrane_host`) and defines a safe wrapper
/// for each: `host_externs!(typed, names; bytes: bytes, names)`.
///
/// - A typed name `f` (before the `;`) defines
///   `fn f<I, O>(input: &I) -> Result<O, membrane_guest::Error>`: the input is
///   serialized with postcard into the request payload, the response payload is
///   deserialized as `O`.
/// - A bytes name `f` (after `bytes:`) defines
///   `fn f(input: &[u8]) -> Result<Vec<u8>, membrane_guest::Error>` and
///   `fn f_with<R>(input: &[u8], read: impl FnOnce(&[u8]) -> R) -> Result<R, membrane_guest::Error>`:
///   the bytes are the request payload as they are, and the response payload is handed
///   back as bytes, copied into a `Vec` by `f`, or lent to `read` where it lies by
///   `f_with` (no copy).
///
/// Either list may be empty: `host_externs!(add)`, `host_externs!(bytes: fetch)`. Each
/// name is imported as `membrane_host.<name>`; a host function that fails makes the
/// wrapper return `Err` with the host's code and message. See `membrane_guest` for
/// examples.
#[proc_macro]
pub fn host_externs(input: TokenStream) -> TokenStream {
    match host_externs::host_externs(input.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}
