//! Integration tests of membrane-host on the real guest examples (one binary, a module
//! per topic). The guests are built by `cargo xtask build-guests` (the README's test
//! command `cargo xtask test` does it first).

mod abi;
mod cache;
mod calls;
mod checksums;
#[cfg(feature = "component")]
mod components;
mod host_fns;
mod hostile;
mod lifecycle;
mod limits;
mod routing;
mod runtime;
mod services;
mod soak;
mod support;
#[cfg(feature = "wasi")]
mod wasi;
