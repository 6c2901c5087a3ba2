//! The `membrane` binary end to end, on the built guest examples.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// [`membrane`], killed and failing the test if it runs longer than `limit`.
fn membrane_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_membrane"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `output` failed with exit status `code` and one `error:` line on
/// stderr containing `needle`.
fn check_failure(args: &[&str], output: &Output, code: i32, needle: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1 && stderr.contains(needle),
        "{args:?}: {stderr}"
    );
}

/// Runs the binary with `args` and checks its failure (see [`check_failure`]).
fn check(args: &[&str], code: i32, needle: &str) {
    check_failure(args, &membrane(args), code, needle);
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
    check(
        &["call", "/nonexistent.wasm", "f"],
        2,
        "cannot read /nonexistent.wasm",
    );
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

/// `--input-hex` takes hex digits only, two per byte, whitespace between bytes only:
/// `+` (which `u8::from_str_radix` takes as a sign), `0x` prefixes and bytes split by
/// a space are usage errors.
#[test]
fn input_hex_takes_hex_digits_only() {
    let echo = guest("echo");
    let echo = echo.to_str().unwrap();
    for (hex, needle) in [
        ("+1+2", "`+` is not a hex digit"),
        ("01 +2", "`+` is not a hex digit"),
        ("0x01", "`x` is not a hex digit"),
        ("-1", "`-` is not a hex digit"),
        ("é1", "`é` is not a hex digit"),
        ("0 1", "`0` is not a whole number of bytes"),
        ("abc", "even number"),
    ] {
        // `--input-hex=-1`: as a separate argument, clap takes `-1` for a flag.
        check(
            &["call", echo, "echo", &format!("--input-hex={hex}")],
            2,
            needle,
        );
    }
    let out = membrane(&["call", echo, "echo", "--input-hex", " 0A\tff  10\n"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0aff10\n");
}

/// A module file that cannot be read (missing, a directory) is a usage error, exit
/// status 2, for every subcommand, and the message names the file. The cache directory
/// is not created for it.
#[test]
fn an_unreadable_module_file_is_a_usage_error_for_every_subcommand() {
    let cache = std::env::temp_dir().join(format!("membrane-cli-unread-{}", std::process::id()));
    let cache = cache.to_str().unwrap();
    let a_directory = std::env::temp_dir();
    for module in ["/nonexistent.wasm", a_directory.to_str().unwrap()] {
        let needle = format!("cannot read {module}");
        check(&["call", module, "f"], 2, &needle);
        check(&["inspect", module], 2, &needle);
        check(&["precompile", module, "--cache-dir", cache], 2, &needle);
    }
    assert!(!PathBuf::from(cache).exists());
}

/// Every subcommand reads a module file up to `--max-module-size` and one byte: a
/// regular file larger than that is refused for its size (exit status 5), and so is,
/// quickly, a file that does not end.
#[cfg(unix)]
#[test]
fn module_files_are_read_up_to_the_size_limit_by_every_subcommand() {
    let cache = std::env::temp_dir().join(format!("membrane-cli-zero-{}", std::process::id()));
    let cache = cache.to_str().unwrap();
    let echo = guest("echo");
    let echo_len = std::fs::metadata(&echo).unwrap().len();
    let limit = ["--max-module-size", "1024"];
    for (module, needle) in [
        (
            echo.to_str().unwrap(),
            format!("module of {echo_len} bytes is larger than the limit of 1024"),
        ),
        (
            "/dev/zero",
            "module of 1025 bytes is larger than the limit of 1024".to_string(),
        ),
    ] {
        for args in [
            &["call", module, "f"][..],
            &["inspect", module],
            &["precompile", module, "--cache-dir", cache],
        ] {
            let args = [args, &limit[..]].concat();
            let out = membrane_within(&args, Duration::from_secs(60));
            check_failure(&args, &out, 5, &needle);
        }
    }
    let _ = std::fs::remove_dir_all(cache);
}

/// `membrane --help` and the help of each subcommand list the exit statuses.
#[test]
fn help_lists_the_exit_statuses() {
    for args in [
        &["--help"][..],
        &["call", "--help"],
        &["inspect", "--help"],
        &["precompile", "--help"],
    ] {
        let out = membrane(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let help = text(&out.stdout);
        for needle in [
            "Exit status:",
            "  1  ",
            "  2  usage error",
            "module or input file that cannot be read",
            "  3  ",
            "  4  ",
            "  5  ",
            "  6  ",
        ] {
            assert!(help.contains(needle), "{args:?}: {needle:?} not in\n{help}");
        }
    }
}

/// Output that cannot be written (standard output on `/dev/full`) fails every
/// subcommand with exit status 1 and a message: not a usage error, not a panic, and
/// not silently (`--raw` output has no newline to flush it before the end).
#[cfg(target_os = "linux")]
#[test]
fn output_that_cannot_be_written_is_a_failure_of_its_own() {
    let cache = std::env::temp_dir().join(format!("membrane-cli-full-{}", std::process::id()));
    let cache = cache.to_str().unwrap();
    let echo = guest("echo");
    let echo = echo.to_str().unwrap();
    for args in [
        &["call", echo, "echo", "--input-hex", "2a"][..],
        &["call", echo, "echo", "--input-hex", "2a", "--raw"],
        &["inspect", echo],
        &["precompile", echo, "--cache-dir", cache],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_membrane"))
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        check_failure(args, &out, 1, "cannot write the output");
    }
    let _ = std::fs::remove_dir_all(cache);
}

/// A component exporting `add(a: u32, b: u32) -> u32` and `math#double(x: s64) -> s64`,
/// written to a file in `dir`.
fn component_file(dir: &std::path::Path) -> PathBuf {
    let wasm = wat::parse_str(
        r#"(component
  (core module $m
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "double") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2)))
    (func (export "spin") (loop $l (br $l))))
  (core instance $i (instantiate $m))
  (func (export "add") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
  (func (export "spin") (canon lift (core func $i "spin")))
  (func $double (param "x" s64) (result s64) (canon lift (core func $i "double")))
  (instance $math (export "double" (func $double)))
  (export "math" (instance $math)))"#,
    )
    .unwrap();
    let path = dir.join("add.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

/// A component is called with WAVE arguments and prints its result in WAVE; inspect
/// prints its functions' signatures.
#[test]
fn components_are_called_with_wave_and_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let path = component_file(dir.path());
    let file = path.to_str().unwrap();
    let out = membrane(&["call", file, "add", "1, 2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "3\n");
    let out = membrane(&["call", file, "math#double", "-21"]);
    assert_eq!(text(&out.stdout), "-42\n", "{}", text(&out.stderr));
    let out = membrane(&["inspect", file]);
    let report = text(&out.stdout);
    assert!(report.starts_with("component:"), "{report}");
    assert!(
        report.contains("world root {\n")
            && report.contains("  export add: func(a: u32, b: u32) -> u32;\n"),
        "{report}"
    );
    assert!(
        report.contains("  export math: interface {\n    double: func(x: s64) -> s64;\n  }\n"),
        "{report}"
    );

    let args = ["call", file, "add", "1"];
    check_failure(&args, &membrane(&args), 2, "invalid arguments for `add`");
    let args = ["call", file, "nope", ""];
    check_failure(&args, &membrane(&args), 6, "nope");
    let args = ["call", file, "add", "1, 2", "--input-hex", "00"];
    check_failure(&args, &membrane(&args), 2, "WAVE arguments");
    // Limits as flags, as for modules.
    let args = ["call", file, "spin", "", "--fuel", "100000"];
    check_failure(&args, &membrane(&args), 4, "fuel");
}

/// WAVE arguments given for a core module are a usage error.
#[test]
fn wave_arguments_are_for_components_only() {
    let echo = guest("echo");
    let args = ["call", echo.to_str().unwrap(), "echo", "1"];
    check_failure(&args, &membrane(&args), 2, "for components");
}

/// A WASI component gets nothing unless the flags grant it: refused without them, an
/// empty environment with `--wasi`, the granted variable, directory and output with
/// them.
#[test]
fn wasi_is_granted_by_flags_only() {
    let greeter = guest("wasi_greeter");
    let file = greeter.to_str().unwrap();
    let args = ["call", file, "env", "\"HOME\""];
    check_failure(&args, &membrane(&args), 6, "wasi:");

    let out = membrane(&["call", file, "env", "\"HOME\"", "--wasi"]);
    assert_eq!(text(&out.stdout), "none\n", "{}", text(&out.stderr));
    let out = membrane(&[
        "call",
        file,
        "env",
        "\"GREETING\"",
        "--env",
        "GREETING=salut",
    ]);
    assert_eq!(
        text(&out.stdout),
        "some(\"salut\")\n",
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "hello").unwrap();
    let mount = format!("{}::/data", dir.path().display());
    let out = membrane(&[
        "call",
        file,
        "read-file",
        "\"/data/note.txt\"",
        "--dir",
        &mount,
    ]);
    assert_eq!(
        text(&out.stdout),
        "ok(\"hello\")\n",
        "{}",
        text(&out.stderr)
    );
    let out = membrane(&[
        "call",
        file,
        "write-file",
        "\"/data/new.txt\", \"x\"",
        "--dir",
        &mount,
    ]);
    assert!(
        text(&out.stdout).starts_with("err("),
        "{}",
        text(&out.stdout)
    );
    let out = membrane(&[
        "call",
        file,
        "write-file",
        "\"/data/new.txt\", \"x\"",
        "--dir-rw",
        &mount,
    ]);
    assert_eq!(text(&out.stdout), "ok\n", "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "x"
    );

    let out = membrane(&["call", file, "print", "\"to stdout\"", "--wasi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("to stdout"),
        "{}",
        text(&out.stderr)
    );

    let args = ["call", file, "env", "\"HOME\"", "--env", "HOME"];
    check_failure(&args, &membrane(&args), 2, "--env takes KEY=VALUE");
    let echo = guest("echo");
    let args = ["call", echo.to_str().unwrap(), "echo", "--wasi"];
    check_failure(&args, &membrane(&args), 2, "WASI flags are for components");
}
