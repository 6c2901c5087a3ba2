//! `cargo xtask ci`: exactly what `.ci/run` checks.

use crate::{guests, run, wasi_guests};

pub(crate) fn run() -> Result<(), String> {
    guests::ensure_wasm_target()?;
    run::cargo(&["fmt", "--all", "--check"])?;
    run::cargo(&[
        "fmt",
        "--all",
        "--check",
        "--manifest-path",
        "guest-examples/Cargo.toml",
    ])?;
    run::cargo(&[
        "fmt",
        "--all",
        "--check",
        "--manifest-path",
        wasi_guests::MANIFEST,
    ])?;
    run::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        "membrane-benches/component",
        "--",
        "-D",
        "warnings",
    ])?;
    run::cargo(&[
        "clippy",
        "--manifest-path",
        "guest-examples/Cargo.toml",
        "--target",
        "wasm32-unknown-unknown",
        "--target-dir",
        "target/guest-build",
        "--",
        "-D",
        "warnings",
    ])?;
    run::cargo(&[
        "clippy",
        "--manifest-path",
        wasi_guests::MANIFEST,
        "--target",
        "wasm32-wasip2",
        "--target-dir",
        "target/guest-build",
        "--",
        "-D",
        "warnings",
    ])?;
    // The README's test command, as written there.
    run::cargo(&["xtask", "test"])?;
    // Non-default features, one by one.
    run::cargo(&[
        "test",
        "-p",
        "membrane-guest",
        "--features",
        "verify-host-envelopes",
    ])?;
    for krate in ["membrane-types", "membrane-codec", "membrane-guest"] {
        run::cargo(&[
            "build",
            "-p",
            krate,
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
        ])?;
    }
    // The executor-neutral host runtime needs std but no wasmtime: it builds for wasm32.
    run::cargo(&[
        "build",
        "-p",
        "membrane-runtime",
        "--target",
        "wasm32-unknown-unknown",
    ])?;
    run::cargo(&[
        "clippy",
        "-p",
        "membrane-runtime",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ])?;
    run::cargo_env(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // The component bench needs the benches' `component` feature (off by default: the
    // component model costs core calls a few instructions); the workspace has the
    // component model on anyway (the CLI's), so this builds nothing twice.
    run::cargo(&[
        "bench",
        "--workspace",
        "--features",
        "membrane-benches/component",
        "--no-run",
    ])?;
    Ok(())
}
