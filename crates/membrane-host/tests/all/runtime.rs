//! The `Runtime` of many modules on the real guests: policies, per-module limits, names,
//! poisoning, counters, hot swap and removal while calls run, pools and `Busy`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use membrane_codec::{Codec, CodecConfig};
use membrane_host::{
    Engine, EngineConfig, ErrorKind, HostError, HostFunctions, InstancePolicy, InstancePre,
    ModuleSpec, Runtime, RuntimeConfig, TrapKind,
};

use crate::support::{engine, guest_bytes, module, wat_module};

/// Fuel that no test call uses up: calls of these modules end by their timeout.
const ENDLESS_FUEL: u64 = 1 << 40;

/// A guest example linked without host functions, with `()` state.
fn pre(name: &str) -> InstancePre<()> {
    module(name).prepare(&HostFunctions::new()).unwrap()
}

fn runtime(max_wait: Duration) -> Runtime {
    Runtime::new(RuntimeConfig::default().max_wait(max_wait))
}

/// Waits (up to a minute, so a loaded machine is no failure) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn in_flight(rt: &Runtime, name: &str) -> u64 {
    rt.module(name).map_or(0, |m| m.counters.in_flight)
}

/// A persistent module keeps its guest state across calls from several threads, which
/// it serves one at a time.
#[test]
fn persistent_keeps_state_across_threads() {
    let rt = runtime(Duration::from_secs(60));
    rt.add("counter", pre("stateful"), ModuleSpec::persistent())
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let rt = rt.clone();
            s.spawn(move || {
                for _ in 0..25 {
                    rt.call::<_, u64>("counter", "add", &1u64).unwrap();
                }
            });
        }
    });
    assert_eq!(rt.call::<_, u64>("counter", "add", &0u64).unwrap(), 100);
    let c = rt.module("counter").unwrap().counters;
    assert_eq!((c.calls, c.ok, c.in_flight), (101, 101, 0));
}

/// A fresh instance per call keeps nothing from one call to the next.
#[test]
fn fresh_per_call_keeps_nothing() {
    let rt = runtime(Duration::ZERO);
    rt.add("counter", pre("stateful"), ModuleSpec::fresh_per_call())
        .unwrap();
    for _ in 0..3 {
        assert_eq!(rt.call::<_, u64>("counter", "add", &5u64).unwrap(), 5);
    }
    let info = rt.module("counter").unwrap();
    assert_eq!(info.policy, InstancePolicy::FreshPerCall);
    assert_eq!(info.counters.ok, 3);
}

/// Two instances of a pool run two endless calls at once (neither waits: a wait
/// longer than `max_wait` would be `Busy`); a third call waits `max_wait` for an
/// instance, then fails with `Busy` without running.
#[test]
fn pooled_calls_overlap_and_a_third_is_busy() {
    let max_wait = Duration::from_millis(50);
    let rt = runtime(max_wait);
    let spec = ModuleSpec::pooled(2)
        .fuel(Some(ENDLESS_FUEL))
        .timeout(Some(Duration::from_secs(2)));
    rt.add("spin", pre("spin"), spec).unwrap();
    std::thread::scope(|s| {
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let rt = rt.clone();
                s.spawn(move || rt.call::<_, u64>("spin", "spin", &()).unwrap_err())
            })
            .collect();
        wait_until("two calls in flight", || in_flight(&rt, "spin") == 2);
        let started = Instant::now();
        let e = rt.call::<_, u64>("spin", "count", &1u64).unwrap_err();
        match e.kind() {
            ErrorKind::Busy {
                module,
                instances,
                waited,
            } => {
                assert_eq!((module.as_str(), *instances), ("spin", 2));
                assert!(*waited >= max_wait, "{waited:?}");
                assert!(started.elapsed() >= max_wait);
            }
            other => panic!("expected busy, got {other:?}"),
        }
        for spinner in spinners {
            let e = spinner.join().unwrap();
            assert!(e.is_trap(&TrapKind::Timeout), "{e}");
        }
    });
    let c = rt.module("spin").unwrap().counters;
    assert_eq!((c.calls, c.limits_hit, c.busy, c.in_flight), (3, 2, 1, 0));
    // The timed-out instances were dropped; the pool makes new ones.
    assert_eq!(rt.call::<_, u64>("spin", "count", &10u64).unwrap(), 10);
}

/// Fuel and timeout given per module apply to that module only, and end its calls
/// with the matching trap.
#[test]
fn per_module_fuel_and_timeout() {
    let rt = runtime(Duration::ZERO);
    rt.add(
        "tight",
        pre("spin"),
        ModuleSpec::persistent().fuel(Some(100_000)),
    )
    .unwrap();
    rt.add("loose", pre("spin"), ModuleSpec::persistent())
        .unwrap();
    let n = 1_000_000u64;
    let e = rt.call::<_, u64>("tight", "count", &n).unwrap_err();
    assert!(e.is_trap(&TrapKind::OutOfFuel), "{e}");
    assert_eq!(rt.call::<_, u64>("loose", "count", &n).unwrap(), n);
    // The instance that ran out was replaced: a small call fits the tight budget.
    assert_eq!(rt.call::<_, u64>("tight", "count", &10u64).unwrap(), 10);

    // The shared engine's timeout is 5 s; this module's is 50 ms.
    let timeout = Duration::from_millis(50);
    rt.add(
        "quick",
        pre("spin"),
        ModuleSpec::persistent()
            .fuel(Some(ENDLESS_FUEL))
            .timeout(Some(timeout)),
    )
    .unwrap();
    let started = Instant::now();
    let e = rt.call::<_, u64>("quick", "spin", &()).unwrap_err();
    assert!(e.is_trap(&TrapKind::Timeout), "{e}");
    // Far below the engine's 5 s: the module's own timeout stopped it.
    assert!(started.elapsed() < timeout * 50, "{:?}", started.elapsed());
    let c = rt.module("quick").unwrap().counters;
    assert_eq!((c.calls, c.limits_hit), (1, 1));
    assert!(c.last_error.unwrap().contains("timeout"));
}

/// An engine without a timeout (or without metering) cannot enforce a module's timeout
/// (or fuel): `add` refuses it instead of running the module without it.
#[test]
fn limits_the_engine_cannot_enforce_refuse_the_add() {
    let rt = runtime(Duration::ZERO);
    let bytes = guest_bytes("spin");
    for (config, spec, field) in [
        (
            EngineConfig::default().timeout(None),
            ModuleSpec::persistent().timeout(Some(Duration::from_millis(10))),
            "timeout",
        ),
        (
            EngineConfig::default().fuel(None),
            ModuleSpec::persistent().fuel(Some(1000)),
            "fuel",
        ),
    ] {
        let engine = Engine::new(config).unwrap();
        let pre = engine
            .load(&bytes)
            .unwrap()
            .prepare(&HostFunctions::<()>::new())
            .unwrap();
        let e = rt.add("spin", pre.clone(), spec).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Config { reason } if reason.contains(field)),
            "{e}"
        );
        assert!(rt.modules().is_empty());
        // Without the override, the module runs under the engine's limits.
        rt.add("spin", pre, ModuleSpec::persistent()).unwrap();
        assert_eq!(rt.call::<_, u64>("spin", "count", &3u64).unwrap(), 3);
        rt.remove("spin").unwrap();
    }
}

/// Names are validated, duplicates refused, unknown modules and functions reported
/// before anything runs.
#[test]
fn names_duplicates_and_unknowns() {
    let rt = runtime(Duration::ZERO);
    let long = "m".repeat(65);
    for bad in ["", long.as_str(), "a b", "a/b", "_a", "naïve"] {
        let e = rt
            .add(bad, pre("echo"), ModuleSpec::persistent())
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidModuleName { .. }),
            "{bad:?}: {e}"
        );
    }
    rt.add("echo-1.0_a", pre("echo"), ModuleSpec::persistent())
        .unwrap();
    let e = rt
        .add("echo-1.0_a", pre("typed"), ModuleSpec::persistent())
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::DuplicateModule { name } if name == "echo-1.0_a"),
        "{e}"
    );
    let e = rt.call_raw("nope", "echo", b"").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownModule { name } if name == "nope"),
        "{e}"
    );
    let e = rt.call_raw("echo-1.0_a", "nope", b"").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownFunction { name } if name == "nope"),
        "{e}"
    );
    let e = rt.add("p", pre("echo"), ModuleSpec::pooled(0)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidSpec { .. }), "{e}");
    let infos = rt.modules();
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    assert_eq!(info.counters.calls, 0);
    assert!(info.functions.iter().any(|f| f == "reverse"), "{info:?}");
    assert_eq!(info.hash.0, module("echo").content_hash());
    assert_ne!(info.hash.0, module("typed").content_hash());
}

/// A trap or a panic poisons only the instance it happened in: the runtime drops it,
/// the next call gets a fresh instance, and every kind of outcome lands in its counter.
#[test]
fn a_trap_poisons_only_its_instance_and_counters_add_up() {
    let rt = runtime(Duration::ZERO);
    rt.add("panics", pre("panics"), ModuleSpec::persistent())
        .unwrap();
    rt.add("typed", pre("typed"), ModuleSpec::pooled(2))
        .unwrap();
    rt.add(
        "spin",
        pre("spin"),
        ModuleSpec::fresh_per_call().fuel(Some(10_000)),
    )
    .unwrap();

    assert_eq!(rt.call::<_, u32>("panics", "fine", &()).unwrap(), 42);
    let e = rt
        .call::<_, ()>("panics", "boom", &"on purpose".to_string())
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Panic { message } if message.contains("on purpose")),
        "{e}"
    );
    // A fresh instance serves the next call.
    assert_eq!(rt.call::<_, u32>("panics", "fine", &()).unwrap(), 42);
    let e = rt
        .call::<_, u32>("panics", "out_of_range", &99u32)
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Panic { .. }), "{e}");
    assert_eq!(rt.call::<_, u32>("panics", "fine", &()).unwrap(), 42);
    // Other modules never noticed.
    assert_eq!(
        rt.call::<_, i64>("typed", "divide", &(7i64, 2i64)).unwrap(),
        3
    );
    let e = rt
        .call::<_, i64>("typed", "divide", &(7i64, 0i64))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Guest { .. }), "{e}");
    let e = rt.call::<_, u64>("spin", "spin", &()).unwrap_err();
    assert!(e.is_trap(&TrapKind::OutOfFuel), "{e}");

    let panics = rt.module("panics").unwrap().counters;
    assert_eq!(
        (panics.calls, panics.ok, panics.traps, panics.guest_errors),
        (5, 3, 2, 0)
    );
    let typed = rt.module("typed").unwrap().counters;
    assert_eq!((typed.calls, typed.ok, typed.guest_errors), (2, 1, 1));
    assert!(typed.last_error.unwrap().contains("cannot divide 7 by 0"));
    let spin = rt.module("spin").unwrap().counters;
    assert_eq!((spin.calls, spin.limits_hit), (1, 1));
    for c in [panics, rt.module("typed").unwrap().counters, spin] {
        assert_eq!(
            c.calls,
            c.ok + c.guest_errors + c.traps + c.limits_hit + c.busy + c.other_errors
        );
    }
}

/// A module whose `echo` ignores its input and returns the payload `v2`: its output
/// envelope is written by the host's codec into a data segment.
fn constant_echo(payload: &[u8]) -> Vec<u8> {
    let codec = Codec::new(CodecConfig::default());
    let mut envelope = vec![0u8; 64];
    let len = membrane_runtime::protocol::write_input(&codec, &mut envelope, payload).unwrap();
    let data: String = envelope[..len as usize]
        .iter()
        .map(|b| format!("\\{b:02x}"))
        .collect();
    wat_module(
        2,
        "",
        &format!(
            r#"(data (i32.const 2048) "{data}")
  (func (export "echo") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.const {len})))"#
        ),
    )
}

/// A hot swap while four threads call in a loop: no call fails or is lost, every call
/// that starts after `replace` returns sees the new version.
#[test]
fn hot_swap_while_four_threads_call() {
    let rt = runtime(Duration::from_secs(60));
    rt.add("svc", pre("echo"), ModuleSpec::pooled(4)).unwrap();
    let v2 = engine()
        .load(&constant_echo(b"v2"))
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap();
    let v2_hash = v2.module().content_hash();
    let swapped = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let (old_seen, new_seen) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let after_swap = swapped.load(Ordering::SeqCst);
                    let out = rt.call_raw("svc", "echo", b"ping").unwrap();
                    match out.as_slice() {
                        b"ping" => {
                            assert!(!after_swap, "a call after the swap ran the old version");
                            old_seen.fetch_add(1, Ordering::Relaxed);
                        }
                        b"v2" => {
                            new_seen.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("unexpected output {other:?}"),
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        wait_until("calls before the swap", || {
            calls.load(Ordering::SeqCst) >= 200
        });
        rt.replace("svc", v2).unwrap();
        swapped.store(true, Ordering::SeqCst);
        let at_swap = calls.load(Ordering::SeqCst);
        wait_until("calls after the swap", || {
            calls.load(Ordering::SeqCst) >= at_swap + 200
        });
        stop.store(true, Ordering::SeqCst);
    });
    let total = calls.load(Ordering::SeqCst);
    assert_eq!(
        old_seen.load(Ordering::SeqCst) + new_seen.load(Ordering::SeqCst),
        total
    );
    assert!(new_seen.load(Ordering::SeqCst) >= 200);
    let info = rt.module("svc").unwrap();
    assert_eq!(info.hash.0, v2_hash);
    assert_eq!(info.functions, ["echo"]);
    assert_eq!(info.policy, InstancePolicy::Pooled { max: 4 });
    assert_eq!((info.counters.calls, info.counters.ok), (total, total));
}

/// A gate a host function waits at until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, cond) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cond.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}

/// The `host-fns` guest whose `log_line` waits at the instance's gate (its host state,
/// made by a state factory).
fn gated_host_fns(gate: &Gate) -> membrane_host::WithState<Gate> {
    let mut host = HostFunctions::<Gate>::new();
    host.register("log_line", |ctx, _line: String| -> Result<(), HostError> {
        ctx.state().wait();
        Ok(())
    })
    .register(
        "add",
        |_ctx, (a, b): (u32, u32)| -> Result<u32, HostError> {
            a.checked_add(b).ok_or_else(|| "overflow".into())
        },
    )
    .register("always_fails", |_ctx, _: String| -> Result<(), HostError> {
        Err("no".into())
    })
    .register("call_back", |ctx, n: u32| -> Result<u32, HostError> {
        Ok(ctx.call("double", &n)?)
    })
    .register_raw("echo_bytes", |_ctx, bytes| Ok(bytes.to_vec()));
    let gate = gate.clone();
    module("host-fns")
        .prepare(&host)
        .unwrap()
        .with_state(move || gate.clone())
}

/// A call that runs while its module is replaced and then removed finishes normally,
/// on the version it started on; new calls see the new version, then no module.
#[test]
fn a_running_call_outlives_replace_and_remove() {
    let rt = runtime(Duration::ZERO);
    let gate = Gate::default();
    rt.add("logger", gated_host_fns(&gate), ModuleSpec::pooled(2))
        .unwrap();
    std::thread::scope(|s| {
        let running = {
            let rt = rt.clone();
            s.spawn(move || rt.call::<_, u32>("logger", "log_all", &vec!["a", "b"]))
        };
        wait_until("the call is in flight", || in_flight(&rt, "logger") == 1);
        // Swapped for the echo guest while the call waits in its host function.
        rt.replace("logger", pre("echo")).unwrap();
        assert_eq!(rt.call_raw("logger", "reverse", b"ab").unwrap(), b"ba");
        let e = rt
            .call::<_, u32>("logger", "log_all", &vec!["c"])
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::UnknownFunction { .. }), "{e}");
        rt.remove("logger").unwrap();
        let e = rt.call_raw("logger", "reverse", b"ab").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::UnknownModule { .. }), "{e}");
        assert!(rt.modules().is_empty());
        assert!(!running.is_finished());
        gate.open();
        assert_eq!(running.join().unwrap().unwrap(), 2);
    });
}

/// The state factory gives every instance its own host state.
#[test]
fn a_state_factory_gives_each_instance_its_state() {
    let rt = runtime(Duration::ZERO);
    let mut host = HostFunctions::<Vec<u32>>::new();
    host.register("add", |ctx, (a, b): (u32, u32)| -> Result<u32, HostError> {
        ctx.state_mut().push(a);
        // The state starts with one element (the factory's), then grows per call.
        Ok(a + b + ctx.state().len() as u32 - 2)
    })
    .register("log_line", |_ctx, _: String| -> Result<(), HostError> {
        Ok(())
    })
    .register("always_fails", |_ctx, _: String| -> Result<(), HostError> {
        Err("no".into())
    })
    .register("call_back", |ctx, n: u32| -> Result<u32, HostError> {
        Ok(ctx.call("double", &n)?)
    })
    .register_raw("echo_bytes", |_ctx, bytes| Ok(bytes.to_vec()));
    let pre = module("host-fns").prepare(&host).unwrap();
    rt.add(
        "fresh",
        pre.clone().with_state(|| vec![0]),
        ModuleSpec::fresh_per_call(),
    )
    .unwrap();
    rt.add("kept", pre.with_state(|| vec![0]), ModuleSpec::persistent())
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            rt.call::<_, u32>("fresh", "sum_via_host", &(2u32, 3u32))
                .unwrap(),
            5
        );
    }
    assert_eq!(
        rt.call::<_, u32>("kept", "sum_via_host", &(2u32, 3u32))
            .unwrap(),
        5
    );
    assert_eq!(
        rt.call::<_, u32>("kept", "sum_via_host", &(2u32, 3u32))
            .unwrap(),
        6
    );
}

/// Four threads make 10 000 calls each across three modules of the three policies, a
/// tenth of them panicking and a tenth failing with a guest error: nothing deadlocks,
/// no call is lost or made twice (the persistent counter ends at the number of its
/// calls), and the counters add up to what the threads saw.
#[test]
fn four_threads_of_mixed_calls_add_up() {
    const THREADS: u64 = 4;
    const CALLS: u64 = 10_000;
    let rt = runtime(Duration::from_secs(60));
    rt.add("state", pre("stateful"), ModuleSpec::persistent())
        .unwrap();
    rt.add("typed", pre("typed"), ModuleSpec::pooled(2))
        .unwrap();
    rt.add("panics", pre("panics"), ModuleSpec::fresh_per_call())
        .unwrap();
    let started = Instant::now();
    let seen: Vec<[u64; 4]> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let rt = rt.clone();
                s.spawn(move || {
                    // adds, panics, guest errors, shouts
                    let mut seen = [0u64; 4];
                    for i in 0..CALLS {
                        match (i + t) % 10 {
                            0 => {
                                let e = rt.call::<_, ()>("panics", "boom", "x").unwrap_err();
                                assert!(matches!(e.kind(), ErrorKind::Panic { .. }), "{e}");
                                seen[1] += 1;
                            }
                            1 => {
                                let e = rt.call::<_, i64>("typed", "divide", &(i, 0)).unwrap_err();
                                assert!(matches!(e.kind(), ErrorKind::Guest { .. }), "{e}");
                                seen[2] += 1;
                            }
                            2..=5 => {
                                rt.call::<_, u64>("state", "add", &1u64).unwrap();
                                seen[0] += 1;
                            }
                            _ => {
                                let out: String = rt.call("typed", "shout", "hi").unwrap();
                                assert_eq!(out, "HI");
                                seen[3] += 1;
                            }
                        }
                    }
                    seen
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    eprintln!(
        "{} calls on {THREADS} threads in {:?}",
        THREADS * CALLS,
        started.elapsed()
    );
    let total = |k: usize| seen.iter().map(|s| s[k]).sum::<u64>();
    let (adds, panics, guest_errors, shouts) = (total(0), total(1), total(2), total(3));
    assert_eq!(adds + panics + guest_errors + shouts, THREADS * CALLS);
    assert_eq!(rt.call::<_, u64>("state", "add", &0u64).unwrap(), adds);
    let state = rt.module("state").unwrap().counters;
    assert_eq!(
        (state.calls, state.ok, state.in_flight),
        (adds + 1, adds + 1, 0)
    );
    let typed = rt.module("typed").unwrap().counters;
    assert_eq!(
        (typed.calls, typed.ok, typed.guest_errors, typed.in_flight),
        (guest_errors + shouts, shouts, guest_errors, 0)
    );
    let panicked = rt.module("panics").unwrap().counters;
    assert_eq!(
        (
            panicked.calls,
            panicked.traps,
            panicked.ok,
            panicked.in_flight
        ),
        (panics, panics, 0, 0)
    );
}
