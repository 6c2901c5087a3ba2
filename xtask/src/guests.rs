//! `cargo xtask build-guests`: the guest examples as `target/guests/<name>.wasm`.

use std::fs;

use crate::run;

/// Where the built guests go; tests, benches and the demo read them from here (or from
/// `$MEMBRANE_GUESTS_DIR`).
pub(crate) const GUESTS_DIR: &str = "target/guests";

/// Target dir of the guest build (its own, so it never waits on the host build's lock).
const BUILD_DIR: &str = "target/guest-build";

pub(crate) fn build() -> Result<(), String> {
    ensure_wasm_target()?;
    run::cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "--manifest-path",
        "guest-examples/Cargo.toml",
        "--target-dir",
        BUILD_DIR,
    ])?;
    let root = run::root();
    let out = root.join(BUILD_DIR).join("wasm32-unknown-unknown/release");
    let dest = root.join(GUESTS_DIR);
    fs::create_dir_all(&dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut copied = 0;
    for entry in fs::read_dir(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "wasm") {
            let name = path.file_name().unwrap_or_default();
            fs::copy(&path, dest.join(name))
                .map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
            copied += 1;
        }
    }
    eprintln!("xtask: {copied} guests in {GUESTS_DIR}/");
    crate::wasi_guests::build()?;
    Ok(())
}

/// `rustup` does not add a target listed in rust-toolchain.toml to a toolchain that is
/// already installed, so ask for it explicitly (a no-op when it is there).
pub(crate) fn ensure_wasm_target() -> Result<(), String> {
    if std::process::Command::new("rustup")
        .arg("--version")
        .output()
        .is_err()
    {
        // No rustup: the toolchain is managed some other way; the build will say if
        // the target is missing.
        return Ok(());
    }
    run::command(
        "rustup",
        &["target", "add", "wasm32-unknown-unknown", "wasm32-wasip2"],
        &[],
    )
}
