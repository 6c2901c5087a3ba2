//! Limits: fuel, timeout, cancellation, memory, stack; panics; poisoning.

use std::time::{Duration, Instant};

use membrane_host::{
    Engine, EngineConfig, ErrorKind, HostFunctions, Instance, LimitKind, TrapKind,
};

use crate::support::guest_bytes;

fn engine_with(config: EngineConfig) -> Engine {
    Engine::new(config).unwrap()
}

fn instance_on(engine: &Engine, name: &str) -> Instance<()> {
    engine
        .load(&guest_bytes(name))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap()
        .instantiate(())
        .unwrap()
}

/// Asserts the error kind, then that the instance is poisoned and says so.
fn check_poisoning(instance: &mut Instance<()>, func: &str) {
    assert!(instance.is_poisoned());
    let err = instance.call_raw(func, &[]).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Poisoned { .. }), "{err:?}");
}

#[test]
fn panic_message_reaches_the_host() {
    let engine = engine_with(EngineConfig::default());
    let mut guest = instance_on(&engine, "panics");
    assert_eq!(guest.call::<_, u32>("fine", &()).unwrap(), 42);
    let err = guest.call::<_, ()>("boom", "the reactor").unwrap_err();
    match err.kind() {
        ErrorKind::Panic { message } => assert!(message.contains("boom: the reactor"), "{message}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    check_poisoning(&mut guest, "fine");

    let mut guest = instance_on(&engine, "panics");
    let err = guest.call::<_, u32>("out_of_range", &7u32).unwrap_err();
    match err.kind() {
        ErrorKind::Panic { message } => {
            assert!(message.contains("index out of bounds"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn fuel_stops_an_endless_loop() {
    let engine = engine_with(EngineConfig {
        metering_limit: Some(10_000_000),
        timeout: None,
        ..EngineConfig::default()
    });
    let mut guest = instance_on(&engine, "spin");
    // A bounded loop within the budget runs.
    assert_eq!(guest.call::<_, u64>("count", &1000u64).unwrap(), 1000);
    let err = guest.call::<_, u64>("spin", &()).unwrap_err();
    assert!(err.is_trap(&TrapKind::OutOfFuel), "{err:?}");
    check_poisoning(&mut guest, "count");
}

#[test]
fn fuel_is_per_call() {
    let engine = engine_with(EngineConfig {
        metering_limit: Some(5_000_000),
        timeout: None,
        ..EngineConfig::default()
    });
    let mut guest = instance_on(&engine, "spin");
    // Each call is well within the budget; all of them together are far beyond it.
    for _ in 0..50 {
        assert_eq!(guest.call::<_, u64>("count", &100_000u64).unwrap(), 100_000);
    }
}

#[test]
fn timeout_stops_an_endless_loop() {
    let timeout = Duration::from_millis(100);
    let engine = engine_with(EngineConfig {
        metering_limit: None,
        timeout: Some(timeout),
        ..EngineConfig::default()
    });
    let mut guest = instance_on(&engine, "spin");
    let start = Instant::now();
    let err = guest.call::<_, u64>("spin", &()).unwrap_err();
    assert!(err.is_trap(&TrapKind::Timeout), "{err:?}");
    // Loose bound: the point is that it stops, not how precisely.
    assert!(start.elapsed() < timeout * 50, "took {:?}", start.elapsed());
    check_poisoning(&mut guest, "count");
}

#[test]
fn a_timeout_of_one_instance_leaves_another_running() {
    let engine = engine_with(EngineConfig {
        metering_limit: None,
        timeout: Some(Duration::from_millis(100)),
        ..EngineConfig::default()
    });
    let mut spinner = instance_on(&engine, "spin");
    let mut worker = instance_on(&engine, "spin");
    std::thread::scope(|s| {
        let spinning = s.spawn(move || spinner.call::<_, u64>("spin", &()).unwrap_err());
        // The worker makes many short calls while the spinner runs into its timeout;
        // none of them may be interrupted.
        let mut calls = 0u32;
        while !spinning.is_finished() {
            assert_eq!(worker.call::<_, u64>("count", &10_000u64).unwrap(), 10_000);
            calls += 1;
        }
        let err = spinning.join().unwrap();
        assert!(err.is_trap(&TrapKind::Timeout), "{err:?}");
        assert!(calls > 0);
        assert!(!worker.is_poisoned());
    });
}

#[test]
fn cancel_from_another_thread_stops_only_that_instance() {
    let engine = engine_with(EngineConfig {
        metering_limit: None,
        timeout: None,
        ..EngineConfig::default()
    });
    let mut spinner = instance_on(&engine, "spin");
    let mut other = instance_on(&engine, "spin");
    let cancel = spinner.cancel_handle();
    std::thread::scope(|s| {
        let spinning = s.spawn(move || {
            let err = spinner.call::<_, u64>("spin", &()).unwrap_err();
            (err, spinner)
        });
        let running = s.spawn(move || {
            // Runs for a while (well past the cancel below) and must finish untouched.
            other.call::<_, u64>("count", &300_000_000u64)
        });
        // A cancel only stops a call that is running (one issued before the call
        // starts is forgotten when it starts), and the spawned call may start late on a
        // busy machine: cancel until the spinner is done.
        while !spinning.is_finished() {
            cancel.cancel();
            std::thread::sleep(Duration::from_millis(20));
        }
        let (err, mut spinner) = spinning.join().unwrap();
        assert!(err.is_trap(&TrapKind::Cancelled), "{err:?}");
        check_poisoning(&mut spinner, "count");
        assert_eq!(running.join().unwrap().unwrap(), 300_000_000);
    });
}

#[test]
fn memory_limit_stops_a_memory_hog() {
    let limit = 32 << 20;
    let engine = engine_with(EngineConfig {
        max_memory: limit,
        ..EngineConfig::default()
    });
    let mut guest = instance_on(&engine, "hog");
    let err = guest.call::<_, u64>("hog", &()).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Limit(LimitKind::Memory { limit: l }) if *l == limit),
        "{err:?}"
    );
    assert!(guest.memory_size() <= limit);
    check_poisoning(&mut guest, "hog");

    // A guest that handles the refusal itself returns its own error, and stays usable.
    let mut polite = instance_on(&engine, "hog");
    let err = polite.call::<_, u64>("try_hog", &()).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Guest { code, message } if code.0 == 5 && message.starts_with("stopped after")),
        "{err:?}"
    );
    assert!(polite.memory_size() <= limit);
}

#[test]
fn stack_limit_stops_unbounded_recursion() {
    let engine = engine_with(EngineConfig {
        max_wasm_stack: 256 << 10,
        ..EngineConfig::default()
    });
    let mut guest = instance_on(&engine, "deep");
    assert_eq!(guest.call::<_, u32>("shallow", &100u32).unwrap(), 100);
    let err = guest.call::<_, u64>("deep", &0u64).unwrap_err();
    assert!(err.is_trap(&TrapKind::StackOverflow), "{err:?}");
    check_poisoning(&mut guest, "shallow");
}

#[test]
fn reset_replaces_a_poisoned_instance() {
    let engine = engine_with(EngineConfig {
        metering_limit: Some(1_000_000),
        ..EngineConfig::default()
    });
    let pre = engine
        .load(&guest_bytes("spin"))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap();
    let mut guest = pre.instantiate(()).unwrap();
    assert!(guest.call::<_, u64>("spin", &()).is_err());
    assert!(guest.is_poisoned());
    guest.reset(&pre).unwrap();
    assert!(!guest.is_poisoned());
    assert_eq!(guest.call::<_, u64>("count", &10u64).unwrap(), 10);
}

#[test]
fn module_size_is_limited_before_compiling() {
    let engine = engine_with(EngineConfig {
        max_module_size: 1024,
        ..EngineConfig::default()
    });
    let wasm = guest_bytes("echo");
    let err = engine.load(&wasm).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Limit(LimitKind::ModuleSize { size, limit: 1024 }) if *size == wasm.len()),
        "{err:?}"
    );
}

/// The size error of a file read up to `limit` bytes and one more.
#[cfg(unix)]
fn assert_refused_after_one_byte_past(err: &membrane_host::Error, limit: usize) {
    assert!(
        matches!(err.kind(), ErrorKind::Limit(LimitKind::ModuleSize { size, limit: l }) if *size == limit + 1 && *l == limit),
        "{err:?}"
    );
}

/// A file whose metadata does not tell its size (`/dev/zero` says 0 bytes and never
/// ends) is read up to the limit and one byte more, then refused for its size.
#[cfg(unix)]
#[test]
fn a_module_file_of_unknown_size_is_read_up_to_the_limit_only() {
    let limit = 1 << 20;
    let engine = engine_with(EngineConfig {
        max_module_size: limit,
        ..EngineConfig::default()
    });
    let started = Instant::now();
    let err = engine.load_file("/dev/zero").unwrap_err();
    assert_refused_after_one_byte_past(&err, limit);
    let err = engine.precompile_file("/dev/zero").unwrap_err();
    assert_refused_after_one_byte_past(&err, limit);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A pipe carrying four times the limit: the load stops reading one byte past the
/// limit and closes the pipe, so the writer sees it broken instead of delivering all.
#[cfg(unix)]
#[test]
fn a_module_pipe_longer_than_the_limit_is_refused_after_one_byte_past_it() {
    use std::fs::OpenOptions;
    use std::io::Write;

    let limit = 64 << 10;
    let engine = engine_with(EngineConfig {
        max_module_size: limit,
        ..EngineConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("module.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (result, written) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            // Blocks until the engine opens the pipe for reading.
            let mut pipe = OpenOptions::new().write(true).open(&fifo)?;
            pipe.write_all(&vec![0u8; 4 * limit])
        });
        let result = engine.load_file(&fifo);
        // Had the load not opened the pipe, this would release the writer (opening
        // a FIFO for reading and writing does not block); dropped at once.
        drop(OpenOptions::new().read(true).write(true).open(&fifo));
        (result, writer.join().unwrap())
    });
    assert_refused_after_one_byte_past(&result.unwrap_err(), limit);
    let err = written.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
}

#[test]
fn one_engine_many_threads() {
    let engine = engine_with(EngineConfig::default());
    let pre = engine
        .load(&guest_bytes("typed"))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let pre = pre.clone();
            s.spawn(move || {
                let mut guest = pre.instantiate(()).unwrap();
                for i in 0..500i64 {
                    let q: i64 = guest.call("divide", &(i * t, 1i64)).unwrap();
                    assert_eq!(q, i * t);
                    let fresh: String = pre.call_fresh((), "shout", "x").unwrap();
                    assert_eq!(fresh, "X");
                }
            });
        }
    });
}
