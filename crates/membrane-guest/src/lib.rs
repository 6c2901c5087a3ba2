//! Write membrane modules: WebAssembly guests that a `membrane-host` calls.
//!
//! A module author writes ordinary Rust functions, marks them with
//! [`#[export]`](export), and builds the crate as a `cdylib` for
//! `wasm32-unknown-unknown` (no WASI needed). The SDK provides what the ABI of
//! `docs/abi.md` asks of a guest:
//!
//! - the allocation entry `__membrane_alloc` and a per-call [bumpalo] arena that holds
//!   every envelope of a call and is reset when the next top-level call begins, so guest
//!   memory does not grow with the number of calls (the module's global allocator stays
//!   for state that outlives a call);
//! - the ABI version marker export `__membrane_abi_v1`;
//! - checksums computed by the host at native speed through the `membrane.crc32`
//!   intrinsic (a software CRC-32 inside wasm would cost far more than the call itself);
//! - [`host_externs!`] for typed and bytes wrappers around host functions;
//! - in a runtime of many modules: calls to other modules ([`call`], [`call_bytes`]),
//!   to host callables ([`call_callable`]), the running call's [`context`], and the
//!   list of [`modules`] (when the host allows it);
//! - bytes exports (`#[export] fn f(input: &[u8]) -> Result<B, E>`, see [`BytesOutput`])
//!   and raw helpers [`host_args`], [`return_ok`], [`return_err`];
//! - lifecycle hooks [`#[start]`](start) and [`#[stop]`](stop), run by the host when it
//!   makes an instance and when it drops one;
//! - the standard host services (import module `membrane_services`, each used only if
//!   the host granted it; a module imports only those it calls): [`log`](mod@log) with the
//!   [`info!`] family of macros, the host's [`clock`]s, [`random`] bytes, [`effects`]
//!   for the host to act on, [`debug`](mod@debug) assertions ([`ensure!`]) and breakpoints, the
//!   module's key-value storage [`kv`], and the message [`bus`] between modules, whose
//!   messages a handler marked [`#[on_message]`](on_message) receives;
//! - panic messages sent to the host ([`install_panic_hook`], [`report_panic`]).
//!
//! # Example
//!
//! ```
//! use membrane_guest::{export, Error};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! pub struct Greet { name: String }
//!
//! #[derive(Serialize)]
//! pub struct Greeting { text: String }
//!
//! /// Exported as `greet`: the host calls it with `call::<Greet, Greeting>("greet", ..)`.
//! #[export]
//! pub fn greet(input: Greet) -> Result<Greeting, Error> {
//!     if input.name.is_empty() {
//!         return Err(Error::new(1000, "empty name"));
//!     }
//!     Ok(Greeting { text: format!("hello, {}", input.name) })
//! }
//!
//! // Exported functions stay ordinary Rust functions, testable natively.
//! assert_eq!(greet(Greet { name: "ada".into() }).unwrap().text, "hello, ada");
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `std`   | yes     | [`install_panic_hook`] (a std panic hook; exports install it on their first call). Without `std`, call [`report_panic`] from your `#[panic_handler]`. |
//! | `verify-host-envelopes` | no | verifies the checksum of the envelopes the host writes into the guest's memory for the exchange in progress (a call's input, a host function's response). Without it the guest makes every other check of those envelopes but takes the checksum as the host wrote it: the host owns that memory, and the guest's check would run through the host's own `membrane.crc32`. For debugging a new host implementation. Envelopes the guest writes carry a valid checksum either way. |
//!
//! On targets other than `wasm32` the crate still builds (so exported functions can be
//! unit-tested natively): checksums fall back to software, and host functions return
//! an error with code `NOT_FOUND`.

#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod arena;
mod bytes;
mod crc;
mod error;
mod export;
mod hook;
mod host;
mod panic;
mod runtime;
mod services;
mod state;
mod sys;

pub mod bus;
pub mod clock;
pub mod debug;
pub mod effects;
pub mod kv;
pub mod log;
pub mod random;

pub use bytes::{BytesOutput, Output};
pub use crc::HostCrc;
pub use error::Error;
pub use export::{host_args, return_err, return_ok};
pub use membrane_guest_macros::export;
/// Typed host functions take and return values (postcard); bytes host functions, named
/// after `bytes:`, take and return the payload bytes as they are:
///
/// ```
/// membrane_guest::host_externs!(add, lookup; bytes: fetch);
///
/// fn sum() -> Result<u32, membrane_guest::Error> {
///     add::<(u32, u32), u32>(&(2, 3))
/// }
///
/// /// The length of what the host's `fetch` answers, read where the answer lies.
/// fn fetched_len(key: &[u8]) -> Result<usize, membrane_guest::Error> {
///     fetch_with(key, |response| response.len())
/// }
///
/// /// A copy of what `fetch` answers.
/// fn fetched(key: &[u8]) -> Result<Vec<u8>, membrane_guest::Error> {
///     fetch(key)
/// }
/// # // Off wasm32 there is no host: the calls report NOT_FOUND.
/// # assert!(sum().is_err());
/// # assert!(fetched_len(b"k").is_err());
/// # assert_eq!(fetched(b"k").unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
/// ```
///
/// Either list may be empty (`host_externs!(bytes: fetch)`). The host registers each
/// name (`HostFunctions::register` for a typed one; for a bytes one, any registration
/// that takes and returns payload bytes, such as `register_raw`), or loading the module
/// fails naming it. Give host functions names that differ from the module's own
/// exports: both live in one symbol namespace when the module is linked.
///
/// A request is written straight into a 1 KiB buffer of the SDK when it fits (else into
/// the arena), and the host writes its response over it when that fits (else into the
/// arena): `name_with` lends `read` the response where it lies, copying nothing. `read`
/// may call host functions itself; they go through the arena, leaving the response it
/// reads untouched.
#[doc(inline)]
pub use membrane_guest_macros::host_externs;
/// ```
/// use membrane_guest::bus::{self, Message};
/// use membrane_guest::Error;
///
/// /// Runs once per message queued for this module: echoes pings to their sender.
/// #[membrane_guest::on_message]
/// fn on_message(msg: Message) -> Result<(), Error> {
///     match (msg.channel.as_str(), &msg.from) {
///         ("ping", Some(module)) => bus::send(module, "pong", &msg.payload),
///         ("ping", None) => bus::send_to_host("pong", &msg.payload),
///         _ => Ok(()),
///     }
/// }
/// # // The handler stays an ordinary function; off wasm32 there is no bus.
/// # let msg = Message { from: Some("a".into()), channel: "ping".into(), payload: vec![1] };
/// # assert_eq!(on_message(msg).unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
/// ```
#[doc(inline)]
pub use membrane_guest_macros::on_message;
/// ```
/// use std::cell::RefCell;
///
/// use membrane_guest::{export, host_externs, Error};
///
/// host_externs!(load_config, record_stop);
///
/// thread_local! {
///     static GREETING: RefCell<Option<String>> = const { RefCell::new(None) };
/// }
///
/// /// Runs once in every new instance, before its first call.
/// #[membrane_guest::start]
/// fn start() -> Result<(), Error> {
///     let greeting: String = load_config(&"greeting")?;
///     if greeting.is_empty() {
///         return Err(Error::new(1000, "no greeting configured"));
///     }
///     GREETING.with(|g| *g.borrow_mut() = Some(greeting));
///     Ok(())
/// }
///
/// #[export]
/// pub fn greet(name: String) -> Result<String, Error> {
///     GREETING.with(|g| match &*g.borrow() {
///         Some(greeting) => Ok(format!("{greeting}, {name}")),
///         None => Err("not started".into()),
///     })
/// }
/// # // Off wasm32 there is no host: the host function reports NOT_FOUND.
/// # assert_eq!(start().unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
/// # assert!(greet("ada".into()).is_err());
/// ```
#[doc(inline)]
pub use membrane_guest_macros::start;
/// ```
/// use membrane_guest::{host_externs, Error};
///
/// host_externs!(record_stop);
///
/// /// Runs when the host drops an instance that started (not after a trap).
/// #[membrane_guest::stop]
/// fn stop() -> Result<(), Error> {
///     record_stop(&"flushed")
/// }
/// # assert!(stop().is_err());
/// ```
#[doc(inline)]
pub use membrane_guest_macros::stop;
pub use membrane_types::ErrorCode;
#[cfg(feature = "std")]
pub use panic::install_panic_hook;
pub use panic::report_panic;
pub use runtime::{
    Context, ModuleEntry, call, call_bytes, call_bytes_with, call_callable, call_callable_bytes,
    context, forward, modules,
};

/// Support code for the macros. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __rt {
    pub use crate::bytes::export_bytes;
    pub use crate::debug::failed_args;
    pub use crate::export::export_typed;
    pub use crate::hook::run_hook;
    pub use crate::host::{call_host, call_host_bytes};
    pub use crate::log::log_args;
    pub use alloc::vec::Vec;
    pub use membrane_types::HOST_MODULE;
    pub use postcard;
    pub use serde;
}
