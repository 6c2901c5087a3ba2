//! The `membrane` binary end to end, on the built guest examples.

use std::path::PathBuf;
use std::process::{Command, Output};

fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("MEMBRANE_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run `cargo xtask build-guests`",
        path.display()
    );
    path
}

fn membrane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_membrane"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn call_echo_with_hex_input() {
    let echo = guest("echo");
    let out = membrane(&[
        "call",
        echo.to_str().unwrap(),
        "reverse",
        "--input-hex",
        "01 02 03",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "030201\n");
}

#[test]
fn call_with_input_file_and_raw_output() {
    let echo = guest("echo");
    let dir = std::env::temp_dir().join(format!("membrane-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.bin");
    std::fs::write(&input, b"hello").unwrap();
    let out = membrane(&[
        "call",
        echo.to_str().unwrap(),
        "echo",
        "--input",
        input.to_str().unwrap(),
        "--raw",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"hello");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_have_clear_messages_and_exit_codes() {
    let check = |args: &[&str], code: i32, needle: &str| {
        let out = membrane(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    };
    let echo = guest("echo");
    let echo = echo.to_str().unwrap();
    let spin = guest("spin");
    check(
        &["call", echo, "reject", "--input-hex", "aa"],
        3,
        "guest error 1001: rejected 1 bytes",
    );
    check(
        &["call", spin.to_str().unwrap(), "spin", "--fuel", "100000"],
        4,
        "out of fuel",
    );
    check(
        &[
            "call",
            spin.to_str().unwrap(),
            "spin",
            "--fuel",
            "0",
            "--timeout-ms",
            "50",
        ],
        4,
        "timeout",
    );
    check(&["call", echo, "missing"], 6, "no function `missing`");
    check(
        &["call", echo, "echo", "--max-module-size", "100"],
        5,
        "larger than the limit of 100",
    );
    check(
        &["call", echo, "echo", "--input-hex", "abc"],
        2,
        "even number",
    );
    check(&["call", "/nonexistent.wasm", "f"], 1, "/nonexistent.wasm");
    check(&["precompile", echo], 2, "--cache-dir");
    let host_fns = guest("host_fns");
    check(
        &["call", host_fns.to_str().unwrap(), "sum_via_host"],
        6,
        "membrane_host::add",
    );
}

#[test]
fn inspect_lists_exports_imports_and_hash() {
    let out = membrane(&["inspect", guest("typed").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for needle in [
        "abi version: 1",
        "functions:   divide, hello, shout, sort_unique, total",
        "__membrane_alloc: (type (func (param i32 i32) (result i32)))",
        "membrane::crc32",
        "blake3:      ",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
}

#[test]
fn precompile_fills_the_cache_directory() {
    let dir = std::env::temp_dir().join(format!("membrane-cli-cache-{}", std::process::id()));
    let out = membrane(&[
        "precompile",
        guest("echo").to_str().unwrap(),
        "--cache-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let artifact = PathBuf::from(text(&out.stdout).trim());
    assert!(
        artifact.starts_with(&dir) && artifact.exists(),
        "{}",
        artifact.display()
    );
    // A later call through the same cache directory works from the artifact.
    let out = membrane(&[
        "call",
        guest("echo").to_str().unwrap(),
        "echo",
        "--input-hex",
        "2a",
        "--cache-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2a\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
