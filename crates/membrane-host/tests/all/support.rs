//! Shared helpers: loading the built guest examples, engines with small limits.

use std::path::PathBuf;
use std::sync::OnceLock;

use membrane_host::{Engine, EngineConfig, HostFunctions, Instance, Module};

/// Directory of the built guests: `$MEMBRANE_GUESTS_DIR`, else `target/guests`.
pub(crate) fn guests_dir() -> PathBuf {
    match std::env::var_os("MEMBRANE_GUESTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"),
    }
}

/// The wasm bytes of a guest example (`host-fns` is read from `host_fns.wasm`).
pub(crate) fn guest_bytes(name: &str) -> Vec<u8> {
    let path = guests_dir().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read guest {}: {e}; build the guests with `cargo xtask build-guests` (or run the tests with `cargo xtask test`)",
            path.display()
        )
    })
}

/// One engine with default settings shared by the tests that do not change limits.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("default engine"))
}

/// A guest example loaded on the shared engine.
pub(crate) fn module(name: &str) -> Module {
    engine()
        .load(&guest_bytes(name))
        .expect("guest example loads")
}

/// An instance of a guest example with no host functions and `()` state.
pub(crate) fn instance(name: &str) -> Instance<()> {
    module(name)
        .prepare(&HostFunctions::new())
        .expect("links")
        .instantiate(())
        .expect("instantiates")
}

/// A membrane module in WAT: `pages` of memory, the version export, an allocation entry
/// that hands out `0x10000` (inputs of the tests that use it are small), `imports`
/// before and `body` after them. Its functions return no output envelope unless
/// `body` says so.
pub(crate) fn wat_module(pages: u32, imports: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  {imports}
  (memory (export "memory") {pages})
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i32 i32) (result i32) (i32.const 0x10000))
  {body}
)"#
    ))
    .expect("test wat")
}
