//! The WASI guest example (`guest-examples/wasi-greeter`), built for `wasm32-wasip2`
//! (a component, straight from rustc and wasm-component-ld) into
//! `target/guests/wasi_greeter.wasm`; part of `cargo xtask build-guests`.

use std::fs;

use crate::guests::GUESTS_DIR;
use crate::run;

/// Target dir of the guest build (the one the other guests use: their targets differ).
const BUILD_DIR: &str = "target/guest-build";

/// The manifest of the WASI guest, a workspace of its own.
pub(crate) const MANIFEST: &str = "guest-examples/wasi-greeter/Cargo.toml";

pub(crate) fn build() -> Result<(), String> {
    run::cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
        MANIFEST,
        "--target-dir",
        BUILD_DIR,
    ])?;
    let root = run::root();
    let built = root
        .join(BUILD_DIR)
        .join("wasm32-wasip2/release/wasi_greeter.wasm");
    let dest = root.join(GUESTS_DIR);
    fs::create_dir_all(&dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    fs::copy(&built, dest.join("wasi_greeter.wasm"))
        .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
    eprintln!("xtask: the WASI guest in {GUESTS_DIR}/wasi_greeter.wasm");
    Ok(())
}
