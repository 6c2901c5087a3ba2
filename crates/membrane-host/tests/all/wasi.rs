//! WASI preview 2 on the real guest `guest-examples/wasi-greeter` (Rust std on
//! wasm32-wasip2): refused without a policy, each denied capability observed from
//! inside, each grant observed from inside, stdout and stderr captured as `tracing`
//! lines with the instance's name and bounded, limits on a WASI component.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use membrane_host::component::{
    Component, ComponentImports, ComponentInstance, DirAccess, WasiPolicy,
};
use membrane_host::{Engine, EngineConfig, ErrorKind, TrapKind};

use crate::support::{engine, guest_bytes};

fn greeter(engine: &Engine) -> Component {
    engine
        .load_component(&guest_bytes("wasi-greeter"))
        .expect("the WASI guest loads")
}

fn instance(policy: WasiPolicy) -> ComponentInstance {
    let mut imports = ComponentImports::new();
    imports.name("greeter").wasi(policy);
    greeter(engine()).instantiate_with(&imports).unwrap()
}

fn wave(instance: &mut ComponentInstance, call: &str) -> String {
    instance.call_wave(call).unwrap()
}

#[test]
fn without_a_policy_the_wasi_imports_are_named() {
    let component = greeter(engine());
    let wasi: Vec<String> = component
        .imports()
        .into_iter()
        .filter(|i| i.starts_with("wasi:"))
        .collect();
    assert!(
        wasi.iter()
            .any(|i| i.starts_with("wasi:cli/environment@0.2.")),
        "{wasi:?}"
    );
    assert!(
        wasi.iter()
            .any(|i| i.starts_with("wasi:filesystem/preopens@0.2.")),
        "{wasi:?}"
    );
    let e = component.instantiate().unwrap_err();
    match e.kind() {
        ErrorKind::MissingImports { imports } => assert_eq!(imports, &wasi),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_default_policy_denies_everything_observably() {
    let mut greeter = instance(WasiPolicy::default());
    assert_eq!(wave(&mut greeter, r#"greet("ada")"#), r#""hello, ada!""#);
    // No environment, no arguments.
    assert_eq!(wave(&mut greeter, r#"env("PATH")"#), "none");
    assert_eq!(wave(&mut greeter, r#"env("HOME")"#), "none");
    assert_eq!(wave(&mut greeter, "args()"), "[]");
    // No files: nothing is preopened.
    let read = wave(&mut greeter, r#"read-file("/etc/hostname")"#);
    assert!(read.starts_with("err("), "{read}");
    let read = wave(&mut greeter, r#"read-file("Cargo.toml")"#);
    assert!(read.starts_with("err("), "{read}");
    // Frozen clocks: the wall clock reads the Unix epoch, the monotonic one never moves.
    assert_eq!(wave(&mut greeter, "now()"), "0");
    assert_eq!(wave(&mut greeter, "elapsed()"), "0");
    // Empty stdin.
    assert_eq!(wave(&mut greeter, "read-stdin()"), r#""""#);
}

#[test]
fn each_grant_is_observed_from_inside() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("hello.txt"), "from the host").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();

    let mut greeter = instance(
        WasiPolicy::default()
            .env("GREETING", "salut")
            .arg("greeter")
            .arg("--loud")
            .preopen(&data, "/data", DirAccess::ReadOnly)
            .preopen(&out, "/out", DirAccess::ReadWrite)
            .clocks(true)
            .stdin("typed in"),
    );
    assert_eq!(wave(&mut greeter, r#"env("GREETING")"#), r#"some("salut")"#);
    assert_eq!(wave(&mut greeter, r#"env("PATH")"#), "none");
    assert_eq!(wave(&mut greeter, "args()"), r#"["greeter", "--loud"]"#);
    assert_eq!(
        wave(&mut greeter, r#"read-file("/data/hello.txt")"#),
        r#"ok("from the host")"#
    );
    // Nothing outside the preopened directories, `..` included.
    for path in ["/data/../secret.txt", "/secret.txt", "../secret.txt"] {
        let read = wave(&mut greeter, &format!(r#"read-file("{path}")"#));
        assert!(read.starts_with("err("), "{path}: {read}");
    }
    // The read-only directory is not writable; the read-write one is.
    let write = wave(&mut greeter, r#"write-file("/data/new.txt", "x")"#);
    assert!(write.starts_with("err("), "{write}");
    assert!(!data.join("new.txt").exists());
    assert_eq!(
        wave(&mut greeter, r#"write-file("/out/new.txt", "written")"#),
        "ok"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("new.txt")).unwrap(),
        "written"
    );
    // The host's clocks.
    let now: u64 = wave(&mut greeter, "now()").parse().unwrap();
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(host.abs_diff(now) < 60_000_000_000, "{now} vs {host}");
    let elapsed: u64 = wave(&mut greeter, "elapsed()").parse().unwrap();
    assert!(elapsed > 0);
    assert_eq!(wave(&mut greeter, "read-stdin()"), r#""typed in""#);
}

#[test]
fn a_missing_preopened_directory_fails_the_instantiation() {
    let mut imports = ComponentImports::new();
    imports.wasi(WasiPolicy::default().preopen(
        "/nonexistent/membrane/dir",
        "/data",
        DirAccess::ReadOnly,
    ));
    let e = greeter(engine()).instantiate_with(&imports).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Config { reason } if reason.contains("/nonexistent/membrane/dir")),
        "{e:?}"
    );
}

/// Collects the formatted `tracing` events of `f`, one trimmed line each.
fn captured(f: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    text.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn stdout_and_stderr_are_captured_as_lines_with_the_instance_name() {
    let lines = captured(|| {
        let mut greeter = instance(WasiPolicy::default());
        wave(&mut greeter, r#"print("hello\nworld")"#);
        wave(&mut greeter, r#"eprint("oops")"#);
    });
    assert_eq!(
        lines,
        [
            r#"INFO membrane::component: hello component=greeter stream="stdout""#,
            r#"INFO membrane::component: world component=greeter stream="stdout""#,
            r#"INFO membrane::component: oops component=greeter stream="stderr""#,
        ]
    );
}

#[test]
fn output_is_bounded_per_line_and_per_call() {
    let lines = captured(|| {
        let mut greeter = instance(
            WasiPolicy::default()
                .max_line_len(10)
                .max_output_per_call(100),
        );
        wave(&mut greeter, &format!(r#"print("{}")"#, "z".repeat(5000)));
        // 1000 lines of `line <i>`: about 7 bytes each, 100 bytes of them kept.
        wave(&mut greeter, "print-lines(1000)");
        // The next call has its budget again.
        wave(&mut greeter, r#"print("again")"#);
    });
    assert_eq!(
        lines[0],
        r#"INFO membrane::component: zzzzzzzzzz component=greeter stream="stdout" truncated=true"#
    );
    let warnings: Vec<&String> = lines.iter().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{lines:#?}");
    assert!(
        warnings[0].contains("output limit reached") && warnings[0].contains("limit=100"),
        "{lines:#?}"
    );
    let counted = lines.iter().filter(|l| l.contains(": line ")).count();
    assert!((10..=15).contains(&counted), "{lines:#?}");
    assert_eq!(
        lines.last().unwrap(),
        r#"INFO membrane::component: again component=greeter stream="stdout""#
    );
}

#[test]
fn fuel_and_the_timeout_stop_a_wasi_component() {
    let engine = Engine::new(EngineConfig::default().fuel(Some(5_000_000))).unwrap();
    let mut imports = ComponentImports::new();
    imports.wasi(WasiPolicy::default());
    let mut greeter = greeter(&engine).instantiate_with(&imports).unwrap();
    assert_eq!(wave(&mut greeter, r#"greet("x")"#), r#""hello, x!""#);
    let e = greeter.call("spin", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::OutOfFuel)),
        "{e:?}"
    );
    assert!(greeter.is_poisoned());

    let timeout = Duration::from_millis(50);
    let engine = Engine::new(EngineConfig::default().fuel(None).timeout(Some(timeout))).unwrap();
    let mut greeter = greeter_on(&engine, &imports);
    let started = std::time::Instant::now();
    let e = greeter.call("spin", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::Timeout)),
        "{e:?}"
    );
    assert!(started.elapsed() < timeout * 100, "{:?}", started.elapsed());
}

/// A guest asking to sleep for an hour is woken by the call's deadline and stopped by
/// the timeout, clocks granted or not; a short sleep sleeps.
#[test]
fn sleeping_ends_by_the_calls_deadline() {
    let timeout = Duration::from_millis(200);
    let engine = Engine::new(EngineConfig::default().fuel(None).timeout(Some(timeout))).unwrap();
    for clocks in [false, true] {
        let mut imports = ComponentImports::new();
        imports.wasi(WasiPolicy::default().clocks(clocks));
        let mut greeter = greeter_on(&engine, &imports);
        let started = std::time::Instant::now();
        let e = greeter.call_wave("sleep(3600000)").unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Trap(TrapKind::Timeout)),
            "clocks {clocks}: {e:?}"
        );
        assert!(started.elapsed() < timeout * 50, "{:?}", started.elapsed());
    }
    let mut imports = ComponentImports::new();
    imports.wasi(WasiPolicy::default().clocks(true));
    let mut greeter = greeter_on(&engine, &imports);
    let slept: u64 = wave(&mut greeter, "sleep(20)").parse().unwrap();
    assert!(slept >= 20_000_000, "{slept}");
}

fn greeter_on(engine: &Engine, imports: &ComponentImports) -> ComponentInstance {
    greeter(engine).instantiate_with(imports).unwrap()
}
