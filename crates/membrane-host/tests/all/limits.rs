//! Limits: fuel, timeout, cancellation, memory, stack; panics; poisoning.

use std::time::{Duration, Instant};

use membrane_host::{
    Engine, EngineConfig, ErrorKind, HostFunctions, Instance, LimitKind, TrapKind,
};

use crate::support::{guest_bytes, wat_module};

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
    let engine = engine_with(EngineConfig::default().fuel(Some(10_000_000)).timeout(None));
    let mut guest = instance_on(&engine, "spin");
    // A bounded loop within the budget runs.
    assert_eq!(guest.call::<_, u64>("count", &1000u64).unwrap(), 1000);
    let err = guest.call::<_, u64>("spin", &()).unwrap_err();
    assert!(err.is_trap(&TrapKind::OutOfFuel), "{err:?}");
    check_poisoning(&mut guest, "count");
}

#[test]
fn fuel_is_per_call() {
    let engine = engine_with(EngineConfig::default().fuel(Some(5_000_000)).timeout(None));
    let mut guest = instance_on(&engine, "spin");
    // Each call is well within the budget; all of them together are far beyond it.
    for _ in 0..50 {
        assert_eq!(guest.call::<_, u64>("count", &100_000u64).unwrap(), 100_000);
    }
}

#[test]
fn timeout_stops_an_endless_loop() {
    let timeout = Duration::from_millis(100);
    let engine = engine_with(EngineConfig::default().fuel(None).timeout(Some(timeout)));
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
    let engine = engine_with(
        EngineConfig::default()
            .fuel(None)
            .timeout(Some(Duration::from_millis(100))),
    );
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
    let engine = engine_with(EngineConfig::default().fuel(None).timeout(None));
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
    let engine = engine_with(EngineConfig::default().max_memory(limit));
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
    let engine = engine_with(EngineConfig::default().max_wasm_stack(256 << 10));
    let mut guest = instance_on(&engine, "deep");
    assert_eq!(guest.call::<_, u32>("shallow", &100u32).unwrap(), 100);
    let err = guest.call::<_, u64>("deep", &0u64).unwrap_err();
    assert!(err.is_trap(&TrapKind::StackOverflow), "{err:?}");
    check_poisoning(&mut guest, "shallow");
}

#[test]
fn reset_replaces_a_poisoned_instance() {
    let engine = engine_with(EngineConfig::default().fuel(Some(1_000_000)));
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
    let engine = engine_with(EngineConfig::default().max_module_size(1024));
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
    let engine = engine_with(EngineConfig::default().max_module_size(limit));
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
    let engine = engine_with(EngineConfig::default().max_module_size(limit));
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

/// Runs `name` of `wasm` on `engine` and returns the error and the elapsed time.
fn timed_failure(engine: &Engine, wasm: &[u8], name: &str) -> (membrane_host::Error, Duration) {
    let mut instance = engine
        .load(wasm)
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap()
        .instantiate(())
        .unwrap();
    let start = Instant::now();
    let err = instance.call_raw(name, &[]).unwrap_err();
    (err, start.elapsed())
}

/// A timeout bounds wall time, whatever the guest does between two epoch checks: here
/// milliseconds in one `memory.fill` or one `membrane.crc32` over 64 MiB (kept that
/// small so that the one uninterruptible instruction stays well within the loose
/// bound on a loaded machine).
/// (Counting one tick per check stretched a 100 ms timeout to seconds.)
#[test]
fn timeout_bounds_wall_time_when_checks_are_far_apart() {
    let timeout = Duration::from_millis(100);
    let engine = engine_with(
        EngineConfig::default()
            .fuel(None)
            .timeout(Some(timeout))
            .max_memory(64 << 20),
    );
    let grow_to_limit = "(drop (memory.grow (i32.sub (i32.const 1024) (memory.size))))";
    let fill = wat_module(
        2,
        "",
        &format!(
            r#"(func (export "run") (param i32 i32) (result i64)
    {grow_to_limit}
    (loop $l (memory.fill (i32.const 0) (i32.const 7) (i32.const 0x03ff_ffff)) (br $l))
    (i64.const 0))"#
        ),
    );
    let crc = wat_module(
        2,
        r#"(import "membrane" "crc32" (func $crc32 (param i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(func (export "run") (param i32 i32) (result i64)
    {grow_to_limit}
    (loop $l (drop (call $crc32 (i32.const 0) (i32.const 0) (i32.const 0x03ff_ffff))) (br $l))
    (i64.const 0))"#
        ),
    );
    for (what, wasm) in [("memory.fill", fill), ("crc32", crc)] {
        let (err, elapsed) = timed_failure(&engine, &wasm, "run");
        assert!(err.is_trap(&TrapKind::Timeout), "{what}: {err:?}");
        let ratio = elapsed.as_secs_f64() / timeout.as_secs_f64();
        eprintln!("{what}: a {timeout:?} timeout ended the call after {elapsed:?} ({ratio:.2}x)");
        assert!(
            ratio < 10.0,
            "{what}: took {elapsed:?} for a timeout of {timeout:?}"
        );
    }
}

/// Work an intrinsic does for the guest is charged to fuel: with fuel and no timeout, a
/// loop of checksums over 16 MiB ends `OutOfFuel` (it used to run until stopped).
#[test]
fn fuel_bounds_the_crc32_intrinsic() {
    let engine = engine_with(
        EngineConfig::default()
            .fuel(Some(10_000_000))
            .timeout(None)
            .max_memory(16 << 20),
    );
    let crc = wat_module(
        256,
        r#"(import "membrane" "crc32" (func $crc32 (param i32 i32 i32) (result i32)))"#,
        r#"(func (export "run") (param i32 i32) (result i64)
    (loop $l (drop (call $crc32 (i32.const 0) (i32.const 0) (i32.const 0x100_0000))) (br $l))
    (i64.const 0))"#,
    );
    let mut instance = engine
        .load(&crc)
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap()
        .instantiate(())
        .unwrap();
    // A backstop so that a regression fails instead of hanging.
    let cancel = instance.cancel_handle();
    let err = std::thread::scope(|s| {
        let call = s.spawn(move || instance.call_raw("run", &[]).unwrap_err());
        let until = Instant::now() + Duration::from_secs(60);
        while !call.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        cancel.cancel();
        call.join().unwrap()
    });
    assert!(err.is_trap(&TrapKind::OutOfFuel), "{err:?}");
}

/// A host-function request is charged for the bytes decompressed from it, whatever the
/// kind of host function: a 4 KiB request that decompresses to 1 MiB (65 536 units)
/// ends `OutOfFuel` on a 40 000 budget, and runs on a large one.
#[test]
fn fuel_counts_what_a_request_decompresses_to() {
    use membrane_codec::{Codec, CodecConfig, Flags};
    let request = Codec::new(CodecConfig {
        compress_threshold: Some(0),
        ..CodecConfig::default()
    })
    .encode(&vec![0u8; 1 << 20], Flags::NONE)
    .unwrap();
    assert!(request.len() < 8 << 10, "{}", request.len());
    let data: String = request.iter().map(|b| format!("\\{b:02x}")).collect();
    let wasm = wat_module(
        64,
        r#"(import "membrane_host" "f" (func $f (param i32 i32 i32 i32) (result i64)))"#,
        &format!(
            r#"(data (i32.const 0x1000) "{data}")
  (func (export "run") (param i32 i32) (result i64)
    (call $f (i32.const 0x1000) (i32.const {len}) (i32.const 0) (i32.const 0)))"#,
            len = request.len()
        ),
    );
    let mut kinds: Vec<(&str, HostFunctions<()>)> = Vec::new();
    let mut typed = HostFunctions::new();
    typed.register(
        "f",
        |_ctx, _input: ()| -> Result<[u8; 4], membrane_host::HostError> { Ok([0; 4]) },
    );
    kinds.push(("typed", typed));
    let mut raw = HostFunctions::new();
    raw.register_raw("f", |_ctx, input| Ok(input[..4].to_vec()));
    kinds.push(("raw", raw));
    let mut bytes = HostFunctions::new();
    bytes.register_bytes("f", |_state, input| Ok(input[..4].to_vec()));
    kinds.push(("bytes", bytes));
    for (kind, host) in &kinds {
        for (fuel, out_of_fuel) in [(40_000, true), (10_000_000, false)] {
            let engine = engine_with(EngineConfig::default().fuel(Some(fuel)).timeout(None));
            let mut instance = engine
                .load(&wasm)
                .unwrap()
                .prepare(host)
                .unwrap()
                .instantiate(())
                .unwrap();
            let result = instance.call_raw("run", &[]);
            if out_of_fuel {
                let err = result.unwrap_err();
                assert!(err.is_trap(&TrapKind::OutOfFuel), "{kind}: {err:?}");
            } else {
                // The typed one may refuse a 1 MiB payload for `()` (an error sent to
                // the guest, which hands it back as its output); the others answer.
                match result {
                    Ok(out) => assert_eq!(out, [0u8; 4], "{kind}"),
                    Err(e) => assert!(
                        *kind == "typed" && matches!(e.kind(), ErrorKind::Guest { .. }),
                        "{kind}: {e:?}"
                    ),
                }
            }
        }
    }
}

/// Runs `call` on another thread and cancels through `cancel` every 10 ms until it
/// ends (a cancel stops only what runs when it is issued, and the thread may start
/// late on a busy machine); returns what `call` returned.
fn cancelling<R: Send>(cancel: &membrane_host::CancelHandle, call: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        let running = s.spawn(call);
        while !running.is_finished() {
            cancel.cancel();
            std::thread::sleep(Duration::from_millis(10));
        }
        running.join().unwrap()
    })
}

/// A cancel handle taken before `reset` cancels the calls of the reset instance.
#[test]
fn a_cancel_handle_survives_reset() {
    // No fuel: only the handle (or the 30 s timeout, a failure here) stops `spin`.
    let engine = engine_with(
        EngineConfig::default()
            .fuel(None)
            .timeout(Some(Duration::from_secs(30))),
    );
    let pre = engine
        .load(&guest_bytes("spin"))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap();
    let mut guest = pre.instantiate(()).unwrap();
    let cancel = guest.cancel_handle();
    guest.reset(&pre).unwrap();
    let err = cancelling(&cancel, move || {
        guest.call::<_, u64>("spin", &()).unwrap_err()
    });
    assert!(err.is_trap(&TrapKind::Cancelled), "{err:?}");
}

/// A start function that loops forever, with neither fuel nor timeout, is stopped by a
/// cancel handle made before instantiation.
#[test]
fn an_instantiation_can_be_cancelled() {
    let engine = engine_with(EngineConfig::default().fuel(None).timeout(None));
    let wasm = wat_module(
        2,
        "",
        r#"(func $start (loop $l (br $l)))
  (start $start)"#,
    );
    let pre = engine
        .load(&wasm)
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap();
    let cancel = membrane_host::CancelHandle::new(&engine);
    let err = cancelling(&cancel, || {
        pre.instantiate_with_cancel((), &cancel).unwrap_err()
    });
    assert!(err.is_trap(&TrapKind::Cancelled), "{err:?}");
    // A handle of another engine is refused.
    let other = membrane_host::CancelHandle::new(&engine_with(EngineConfig::default()));
    let err = pre.instantiate_with_cancel((), &other).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config { .. }), "{err:?}");
}

/// A cancel stops the call running when it is issued; issued while no call runs, it is
/// forgotten and the next call runs normally.
#[test]
fn a_cancel_stops_what_runs_now_and_nothing_later() {
    let engine = engine_with(EngineConfig::default().fuel(None).timeout(None));
    let mut guest = instance_on(&engine, "spin");
    let cancel = guest.cancel_handle();
    // Before: forgotten.
    cancel.cancel();
    assert_eq!(guest.call::<_, u64>("count", &1000u64).unwrap(), 1000);
    // During: stops it.
    let (err, mut guest) = cancelling(&cancel, move || {
        (guest.call::<_, u64>("spin", &()).unwrap_err(), guest)
    });
    assert!(err.is_trap(&TrapKind::Cancelled), "{err:?}");
    check_poisoning(&mut guest, "count");
}

/// Guest recursion on a thread whose stack is smaller than `max_wasm_stack` used to
/// abort the process; the call is refused up front instead, and the instance is not
/// poisoned. On a thread with room, the same recursion is a clean stack overflow.
#[test]
fn a_thread_with_too_small_a_stack_is_refused_not_crashed() {
    let engine = engine_with(EngineConfig::default());
    let mut guest = instance_on(&engine, "deep");
    let (err, mut guest) = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn_scoped(s, move || {
                (guest.call::<_, u64>("deep", &0u64).unwrap_err(), guest)
            })
            .unwrap()
            .join()
            .unwrap()
    });
    if cfg!(target_os = "linux") {
        assert!(
            matches!(err.kind(), ErrorKind::Limit(LimitKind::NativeStack { .. })),
            "{err:?}"
        );
        assert!(!guest.is_poisoned());
    }
    let err = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn_scoped(s, move || guest.call::<_, u64>("deep", &0u64).unwrap_err())
            .unwrap()
            .join()
            .unwrap()
    });
    assert!(err.is_trap(&TrapKind::StackOverflow), "{err:?}");
}

/// The same module gets the same answer, at the same step, from either instance
/// allocator.
#[test]
fn both_allocators_answer_the_same() {
    let base = EngineConfig::default()
        .max_memory(1 << 20)
        .max_table_elements(100)
        .pooling_max_instances(4);
    let on_demand = engine_with(base.clone());
    let pooling = engine_with(base.pooling(true));
    let two_tables = wat_module(1, "", "(table 1 funcref) (table 1 funcref)");
    let four_tables = wat_module(
        1,
        "",
        "(table 1 funcref) (table 1 funcref) (table 1 funcref) (table 100 funcref)",
    );
    let big_memory = wat_module(17, "", "");
    let long_table = wat_module(1, "", "(table 101 funcref)");
    for engine in [&on_demand, &pooling] {
        let pooled = engine.config().pooling;
        for wasm in [&two_tables, &four_tables] {
            let module = engine.load(wasm).unwrap();
            module
                .prepare(&HostFunctions::<()>::new())
                .unwrap()
                .instantiate(())
                .unwrap_or_else(|e| panic!("pooling {pooled}: {e}"));
        }
        let err = engine.load(&big_memory).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Limit(LimitKind::Memory { limit }) if *limit == 1 << 20),
            "pooling {pooled}: {err:?}"
        );
        let err = engine.load(&long_table).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Limit(LimitKind::Table { limit: 100 })
            ),
            "pooling {pooled}: {err:?}"
        );
    }
}

/// A reset that cannot instantiate (here: the pool is full) leaves the instance, its
/// host state and its poisoning as they were.
#[test]
fn a_failed_reset_keeps_the_instance_and_its_state() {
    let engine = engine_with(
        EngineConfig::default()
            .fuel(Some(1_000_000))
            .pooling(true)
            .pooling_max_instances(1),
    );
    let pre = engine
        .load(&guest_bytes("spin"))
        .unwrap()
        .prepare(&HostFunctions::<Vec<u32>>::new())
        .unwrap();
    let mut guest = pre.instantiate(vec![1, 2, 3]).unwrap();
    assert!(guest.call::<_, u64>("spin", &()).is_err());
    let err = guest.reset(&pre).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Limit(LimitKind::Instances)),
        "{err:?}"
    );
    assert_eq!(guest.state(), &vec![1, 2, 3]);
    assert!(guest.is_poisoned());
    // Once the slot is free, the state goes on in a new instance.
    let state = guest.into_state();
    let mut fresh = pre.instantiate(state).unwrap();
    assert_eq!(fresh.call::<_, u64>("count", &5u64).unwrap(), 5);
    assert_eq!(fresh.state(), &vec![1, 2, 3]);
}
