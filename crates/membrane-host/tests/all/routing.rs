//! Calls between modules routed by the `Runtime`, on the real guests `ping`, `pong`,
//! the pipeline `tokenize` → `count` → `report` and `callable-user`: rallies, context,
//! failures of callees as codes, deadlines, depth, re-entry, the no-deadlock rule, host
//! callables and discovery.

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use membrane_host::{
    CallContext, Engine, EngineConfig, ErrorCode, ErrorKind, Grants, HostError, HostFunctions,
    InstancePre, ModuleSpec, Runtime, RuntimeConfig, TrapKind,
};
use serde::Deserialize;

use crate::support::{guest_bytes, module};

/// One stroke of a rally (`ping`'s and `pong`'s `Hit`).
#[derive(Debug, Deserialize, PartialEq)]
struct Hit {
    module: String,
    caller: Option<String>,
    request_id: u64,
    depth: u32,
}

fn pre(name: &str) -> InstancePre<()> {
    module(name).prepare(&HostFunctions::new()).unwrap()
}

/// A runtime with `ping` and `pong`, each a pool of `max` instances.
fn rally_runtime(config: RuntimeConfig, max: usize) -> Runtime {
    let rt = Runtime::new(config);
    rt.add("ping", pre("ping"), ping_spec(ModuleSpec::pooled(max)))
        .unwrap();
    rt.add("pong", pre("pong"), ModuleSpec::pooled(max))
        .unwrap();
    rt
}

/// `spec` with what ping needs granted: its `list` export imports the module list.
fn ping_spec(spec: ModuleSpec) -> ModuleSpec {
    spec.grants(Grants::none().discover())
}

/// The error code a guest's failed call reported to the host (the caller relays the
/// callee's failure as its own error).
fn guest_code(e: &membrane_host::Error) -> (ErrorCode, String) {
    match e.kind() {
        ErrorKind::Guest { code, message } => (*code, message.clone()),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

/// `ping.probe`: calls `module.function` with `input`, returns the outcome as data.
fn probe(rt: &Runtime, module: &str, function: &str, input: &[u8]) -> (ErrorCode, String) {
    let (code, bytes): (u32, Vec<u8>) = rt
        .call("ping", "probe", &(module, function, input))
        .unwrap();
    (
        ErrorCode(code),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A rally alternates between the two modules, one level deeper per stroke, along one
/// request whose id the host's next call does not share; callers are right.
#[test]
fn ping_and_pong_rally_through_the_runtime() {
    let rt = rally_runtime(RuntimeConfig::default(), 8);
    let hits: Vec<Hit> = rt.call("ping", "rally", &6u32).unwrap();
    assert_eq!(hits.len(), 7);
    let request = hits[0].request_id;
    assert_ne!(request, 0);
    for (i, hit) in hits.iter().enumerate() {
        let (me, other) = if i % 2 == 0 {
            ("ping", "pong")
        } else {
            ("pong", "ping")
        };
        assert_eq!(hit.module, me, "{hits:?}");
        assert_eq!(hit.depth, i as u32 + 1);
        assert_eq!(hit.request_id, request);
        let caller = if i == 0 {
            None
        } else {
            Some(other.to_string())
        };
        assert_eq!(hit.caller, caller, "{hits:?}");
    }
    let again: Vec<Hit> = rt.call("pong", "rally", &1u32).unwrap();
    assert_ne!(again[0].request_id, request);
    assert_eq!(again[1].request_id, again[0].request_id);
    let ping = rt.module("ping").unwrap().counters;
    let pong = rt.module("pong").unwrap().counters;
    // 4 strokes by ping in the first rally, 1 in the second; 3 + 1 by pong.
    assert_eq!((ping.ok, pong.ok), (5, 4));
}

/// Depth counts along the whole chain: a rally longer than `max_call_depth` (16 on the
/// default engine) fails with `LIMIT_EXCEEDED` at the call that would go deeper, and
/// the refusal travels back up as each caller's error.
#[test]
fn a_rally_past_the_depth_limit_is_refused() {
    let rt = rally_runtime(RuntimeConfig::default(), 16);
    let hits: Vec<Hit> = rt.call("ping", "rally", &15u32).unwrap();
    assert_eq!(hits.last().unwrap().depth, 16);
    let e = rt.call::<_, Vec<Hit>>("ping", "rally", &16u32).unwrap_err();
    let (code, message) = guest_code(&e);
    assert_eq!(code, ErrorCode::LIMIT_EXCEEDED, "{message}");
    assert!(message.contains("depth 17"), "{message}");
    // Nothing was poisoned by the refusal.
    let ping = rt.module("ping").unwrap().counters;
    assert_eq!(ping.traps + ping.limits_hit, 0, "{ping:?}");
}

/// A→B→A with a `Persistent` A: A's only instance is held by the chain, so the call
/// back fails at once with `BUSY` (never a wait for itself); with a pool the call back
/// runs on another instance.
#[test]
fn a_module_in_the_chain_is_not_waited_for() {
    let rt = Runtime::new(RuntimeConfig::default().max_wait(Duration::from_secs(60)));
    rt.add("ping", pre("ping"), ping_spec(ModuleSpec::persistent()))
        .unwrap();
    rt.add("pong", pre("pong"), ModuleSpec::pooled(2)).unwrap();
    let started = Instant::now();
    let e = rt.call::<_, Vec<Hit>>("ping", "rally", &2u32).unwrap_err();
    let (code, message) = guest_code(&e);
    assert_eq!(code, ErrorCode::BUSY, "{message}");
    assert!(message.contains("already in this call chain"), "{message}");
    // Far less than the 60 s it would have waited.
    assert!(started.elapsed() < Duration::from_secs(30));
    // One stroke there and back is no re-entry.
    let hits: Vec<Hit> = rt.call("ping", "rally", &1u32).unwrap();
    assert_eq!(hits.len(), 2);
}

/// Every way a callee can fail reaches the caller as an error with its own code; the
/// caller goes on (its call succeeds); a trap poisons only the callee's instance, which
/// the runtime replaces.
#[test]
fn callee_failures_reach_the_caller_as_codes() {
    let rt = Runtime::new(RuntimeConfig::default());
    rt.add("ping", pre("ping"), ping_spec(ModuleSpec::persistent()))
        .unwrap();
    rt.add(
        "pong",
        pre("pong"),
        ModuleSpec::persistent().fuel(Some(1_000_000)),
    )
    .unwrap();
    let unit = membrane_codec::to_payload(&()).unwrap();
    let cases = [
        ("pong", "fail", ErrorCode(1234), "pong refuses"),
        ("pong", "boom", ErrorCode::CALLEE_PANICKED, "pong exploded"),
        ("pong", "trap", ErrorCode::CALLEE_TRAPPED, "unreachable"),
        ("pong", "spin", ErrorCode::LIMIT_EXCEEDED, "out of fuel"),
        (
            "nowhere",
            "f",
            ErrorCode::UNKNOWN_MODULE,
            "no module `nowhere`",
        ),
        (
            "pong",
            "missing",
            ErrorCode::UNKNOWN_FUNCTION,
            "no function `missing`",
        ),
        (
            "pong",
            "__membrane_alloc",
            ErrorCode::UNKNOWN_FUNCTION,
            "__membrane_alloc",
        ),
    ];
    for (module, function, code, text) in cases {
        let (got, message) = probe(&rt, module, function, &unit);
        assert_eq!(got, code, "{module}.{function}: {message}");
        assert!(message.contains(text), "{module}.{function}: {message}");
    }
    // The caller is intact and its one instance served every probe.
    let ping = rt.module("ping").unwrap().counters;
    assert_eq!((ping.calls, ping.ok), (7, 7));
    // The callee counted its failures; the trapped instances were replaced.
    let pong = rt.module("pong").unwrap().counters;
    assert_eq!(
        (pong.guest_errors, pong.traps, pong.limits_hit),
        (1, 2, 1),
        "{pong:?}"
    );
    assert_eq!(
        probe(&rt, "pong", "echo", b"still here"),
        (ErrorCode(0), "still here".into())
    );
    // A caller that goes on after a failed call can call again.
    let (first, second): (u32, u32) = rt.call("ping", "twice", &("pong", "trap", &unit)).unwrap();
    assert_eq!(
        (first, second),
        (ErrorCode::CALLEE_TRAPPED.0, ErrorCode::CALLEE_TRAPPED.0)
    );
}

/// A trap in the middle of a chain: host → ping → ping (another instance) → pong.trap.
/// The innermost callee's instance is poisoned; the two pings above it finish normally.
#[test]
fn a_trap_in_the_middle_of_a_chain_stays_there() {
    let rt = rally_runtime(RuntimeConfig::default(), 2);
    let unit = membrane_codec::to_payload(&()).unwrap();
    let inner = membrane_codec::to_payload(&("pong", "trap", &unit)).unwrap();
    let (code, output) = probe(&rt, "ping", "probe", &inner);
    assert_eq!(code, ErrorCode(0), "{output}");
    let (inner_code, message): (u32, Vec<u8>) =
        membrane_codec::from_payload(output.as_bytes()).unwrap();
    assert_eq!(ErrorCode(inner_code), ErrorCode::CALLEE_TRAPPED);
    assert!(String::from_utf8_lossy(&message).contains("pong.trap"));
    let (ping, pong) = (
        rt.module("ping").unwrap().counters,
        rt.module("pong").unwrap().counters,
    );
    assert_eq!((ping.ok, ping.traps), (2, 0));
    assert_eq!((pong.calls, pong.traps), (1, 1));
}

/// A callee never runs past its caller's deadline: `pong` may run 60 s, but its caller
/// `ping` has 200 ms; the callee is stopped (`LIMIT_EXCEEDED` for the caller), and the
/// caller, past its deadline, is stopped by its own timeout.
#[test]
fn a_callee_never_outlives_its_callers_deadline() {
    let engine = Engine::new(EngineConfig::default().fuel(None)).unwrap();
    let load = |name: &str| {
        engine
            .load(&guest_bytes(name))
            .unwrap()
            .prepare(&HostFunctions::<()>::new())
            .unwrap()
    };
    let rt = Runtime::new(RuntimeConfig::default());
    let timeout = Duration::from_millis(200);
    rt.add(
        "ping",
        load("ping"),
        ping_spec(ModuleSpec::persistent().timeout(Some(timeout))),
    )
    .unwrap();
    rt.add(
        "pong",
        load("pong"),
        ModuleSpec::persistent().timeout(Some(Duration::from_secs(60))),
    )
    .unwrap();
    let unit = membrane_codec::to_payload(&()).unwrap();
    let started = Instant::now();
    let e = rt
        .call::<_, (u32, Vec<u8>)>("ping", "probe", &("pong", "spin", &unit))
        .unwrap_err();
    assert!(e.is_trap(&TrapKind::Timeout), "{e}");
    // Loose: far below pong's own 60 s.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let pong = rt.module("pong").unwrap().counters;
    assert_eq!((pong.calls, pong.limits_hit), (1, 1), "{pong:?}");
    assert!(pong.last_error.unwrap().contains("timeout"));
}

/// The context each call reads is its own, with calls running at once on several
/// threads and instances: request ids never repeat across top-level calls and are
/// shared along a chain; depth and caller are those of the call.
#[test]
fn context_is_right_under_concurrency() {
    // A rally of 3 strokes from pong holds two pongs: 4 threads never wait for one.
    let rt = rally_runtime(RuntimeConfig::default(), 8);
    let seen = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (rt, seen) = (rt.clone(), &seen);
            s.spawn(move || {
                for i in 0..200 {
                    let id = if (t + i) % 2 == 0 {
                        let hit: Hit = rt.call("ping", "whoami", &()).unwrap();
                        assert_eq!(
                            (hit.module.as_str(), hit.caller.as_deref(), hit.depth),
                            ("ping", None, 1)
                        );
                        hit.request_id
                    } else {
                        let hits: Vec<Hit> = rt.call("pong", "rally", &2u32).unwrap();
                        let ids: Vec<u64> = hits.iter().map(|h| h.request_id).collect();
                        assert_eq!(ids, [ids[0]; 3]);
                        assert_eq!(hits.iter().map(|h| h.depth).collect::<Vec<_>>(), [1, 2, 3]);
                        assert_eq!(hits[2].caller.as_deref(), Some("ping"));
                        ids[0]
                    };
                    assert!(
                        seen.lock().unwrap().insert(id),
                        "request id {id} seen twice"
                    );
                }
            });
        }
    });
    assert_eq!(seen.into_inner().unwrap().len(), 800);
}

/// The three-module pipeline: tokenize → count → report, the report made at depth 3
/// for the request the host's call started.
#[test]
fn a_pipeline_of_three_modules() {
    let rt = Runtime::new(RuntimeConfig::default());
    for name in ["tokenize", "count", "report"] {
        rt.add(name, pre(name), ModuleSpec::pooled(2)).unwrap();
    }
    let text: String = rt
        .call("tokenize", "process", "The cat saw the other cat; the END.")
        .unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("8 words, 5 distinct (request "),
        "{header}"
    );
    assert!(header.ends_with("depth 3, called by count)"), "{header}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["the: 3", "cat: 2", "end: 1", "other: 1", "saw: 1"]
    );
    for name in ["tokenize", "count", "report"] {
        assert_eq!(rt.module(name).unwrap().counters.ok, 1, "{name}");
    }
}

/// How a rally ended: `Ok`, or the deadlock error relayed by the module whose call to
/// its partner was failed to break a deadlock (`BUSY`, the deadlock's message). Any
/// other outcome fails the test: with deadlocks detected, no call waits `max_wait` out
/// (`Busy`) in these tests.
fn rally_or_deadlock(rt: &Runtime, first: &str, strokes: u32, chains: usize) -> bool {
    match rt.call::<_, Vec<Hit>>(first, "rally", &strokes) {
        Ok(hits) => {
            assert_eq!(hits.len(), strokes as usize + 1);
            false
        }
        Err(e) => {
            let (code, message) = guest_code(&e);
            assert_eq!(code, ErrorCode::BUSY, "{message}");
            assert!(
                message.contains(": deadlock: this call waits for module `")
                    && message.contains(&format!("in a cycle of {chains} call chains")),
                "{message}"
            );
            true
        }
    }
}

/// A→B on one thread while B→A runs on another, both `Persistent`: each holds its own
/// instance and wants the other's. With the default `max_wait` of 5 s, every crossing
/// that deadlocks fails one of its two routed calls at once (the other goes on), so
/// rounds of 400 calls end in milliseconds where 5 s per deadlock would take minutes;
/// no call times out waiting. Rounds run until deadlocks were seen (how many a round
/// sees depends on the scheduler; the first round nearly always does).
#[test]
fn crossing_calls_do_not_deadlock() {
    let rt = Runtime::new(RuntimeConfig::default());
    assert_eq!(rt.config().max_wait, Duration::from_secs(5));
    rt.add("ping", pre("ping"), ping_spec(ModuleSpec::persistent()))
        .unwrap();
    rt.add("pong", pre("pong"), ModuleSpec::persistent())
        .unwrap();
    let start = Barrier::new(2);
    let started = Instant::now();
    let mut deadlocks = 0;
    for _ in 0..10 {
        deadlocks += std::thread::scope(|s| {
            let threads: Vec<_> = ["ping", "pong"]
                .into_iter()
                .map(|first| {
                    let (rt, start) = (&rt, &start);
                    s.spawn(move || {
                        start.wait();
                        (0..200)
                            .filter(|_| rally_or_deadlock(rt, first, 1, 2))
                            .count() as u64
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum::<u64>()
        });
        if deadlocks > 0 {
            break;
        }
    }
    let took = started.elapsed();
    eprintln!("crossing calls: {deadlocks} deadlocks, {took:?}");
    assert!(deadlocks > 0);
    assert!(took < Duration::from_secs(60), "{took:?}");
    let (ping, pong) = (
        rt.module("ping").unwrap().counters,
        rt.module("pong").unwrap().counters,
    );
    assert_eq!((ping.in_flight, pong.in_flight), (0, 0));
    assert_eq!(ping.traps + pong.traps, 0);
    // Each deadlock: one routed call failed (the callee's `busy`), relayed by its caller.
    assert_eq!(ping.busy + pong.busy, deadlocks, "{ping:?} {pong:?}");
    assert_eq!(ping.guest_errors + pong.guest_errors, deadlocks);
}

/// Example (2) of the locking rule: `ping` and `pong` with pools of 4, four threads each
/// playing pong→ping→pong rallies. When the four chains hold the four pongs and each
/// wants a second one, one of them fails at once (a knot of 4) and the other three
/// finish. First forced: four calls hold the four pings (in a host callable, through
/// `user`) while four rallies start, so that each rally takes a pong and waits for a
/// ping; once let go, each asks for a second pong and the last finds all four held by
/// the others, who all wait: exactly one deadlock per round. Then free-running: every
/// call ends `Ok` or with that deadlock, fast.
#[test]
fn four_chains_that_each_want_a_second_instance_of_a_full_pool() {
    let rt = rally_runtime(RuntimeConfig::default(), 4);
    rt.add("user", pre("callable-user"), ModuleSpec::pooled(4))
        .unwrap();
    let (entered, release) = (Arc::new(Barrier::new(5)), Arc::new(Barrier::new(5)));
    let hold = {
        let (entered, release) = (entered.clone(), release.clone());
        rt.register_callable_raw(move |_, _| {
            entered.wait();
            release.wait();
            Ok(Vec::new())
        })
        .unwrap()
    };
    let hold_a_ping = membrane_codec::to_payload(&(hold.get(), Vec::<u8>::new())).unwrap();
    let in_flight = |name: &str| rt.module(name).unwrap().counters.in_flight;
    let started = Instant::now();
    for _ in 0..5 {
        std::thread::scope(|s| {
            let holders: Vec<_> = (0..4)
                .map(|_| s.spawn(|| probe(&rt, "user", "probe", &hold_a_ping)))
                .collect();
            entered.wait();
            let rallies: Vec<_> = (0..4)
                .map(|_| s.spawn(|| rally_or_deadlock(&rt, "pong", 2, 4)))
                .collect();
            // Each rally took a pong and waits for a ping (a call counts in `in_flight`
            // while it waits).
            while in_flight("ping") < 8 {
                std::thread::sleep(Duration::from_millis(1));
            }
            release.wait();
            for holder in holders {
                assert_eq!(holder.join().unwrap().0, ErrorCode(0));
            }
            let deadlocks = rallies
                .into_iter()
                .map(|r| r.join().unwrap())
                .filter(|&deadlocked| deadlocked)
                .count();
            assert_eq!(deadlocks, 1);
        });
    }
    let round = Barrier::new(4);
    let free: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (rt, round) = (&rt, &round);
                s.spawn(move || {
                    (0..100)
                        .filter(|_| {
                            round.wait();
                            rally_or_deadlock(rt, "pong", 2, 4)
                        })
                        .count() as u64
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let took = started.elapsed();
    eprintln!("pools of 4: 5 forced deadlocks, {free} in 400 free rallies, {took:?}");
    // 5 deadlocks waited out would take 25 s, and as long again per free one.
    assert!(took < Duration::from_secs(20), "{took:?}");
    let (ping, pong) = (
        rt.module("ping").unwrap().counters,
        rt.module("pong").unwrap().counters,
    );
    assert_eq!((ping.in_flight, pong.in_flight), (0, 0));
    // Each deadlocked call was a call of pong (from ping), relayed by that ping, then by
    // the pong that called it.
    let deadlocks = 5 + free;
    assert_eq!((ping.busy, pong.busy), (0, deadlocks));
    assert_eq!(
        (ping.guest_errors, pong.guest_errors),
        (deadlocks, deadlocks)
    );
}

/// Host callables: typed and raw, called by id with the caller's context; errors of the
/// callable reach the guest as they are; unknown, unregistered and panicking callables
/// are error codes, never traps; ids are not reused.
#[test]
fn host_callables() {
    let rt = Runtime::new(RuntimeConfig::default());
    rt.add("user", pre("callable-user"), ModuleSpec::pooled(2))
        .unwrap();
    let seen: Arc<Mutex<Vec<CallContext>>> = Arc::default();
    let rate = {
        let seen = seen.clone();
        rt.register_callable(
            move |ctx: &CallContext, amount: f64| -> Result<f64, HostError> {
                seen.lock().unwrap().push(ctx.clone());
                if amount < 0.0 {
                    return Err(HostError::new(1500u32, "negative amount"));
                }
                Ok(amount * 1.5)
            },
        )
        .unwrap()
    };
    assert_eq!(
        rt.call::<_, f64>("user", "convert", &(rate.get(), 2.0))
            .unwrap(),
        3.0
    );
    let ctx = seen.lock().unwrap()[0].clone();
    assert_eq!((ctx.caller.as_deref(), ctx.depth), (Some("user"), 2));
    let e = rt
        .call::<_, f64>("user", "convert", &(rate.get(), -1.0))
        .unwrap_err();
    assert_eq!(guest_code(&e), (ErrorCode(1500), "negative amount".into()));

    let probe = |id: u64, bytes: &[u8]| -> (u32, String) {
        let (code, out): (u32, Vec<u8>) = rt.call("user", "probe", &(id, bytes)).unwrap();
        (code, String::from_utf8_lossy(&out).into_owned())
    };
    let upper = rt
        .register_callable_raw(|_, input| Ok(input.to_ascii_uppercase()))
        .unwrap();
    assert_eq!(probe(upper.get(), b"abc"), (0, "ABC".into()));
    let panics = rt
        .register_callable_raw(|_, _| -> Result<Vec<u8>, HostError> { panic!("callable bug") })
        .unwrap();
    let (code, message) = probe(panics.get(), b"");
    assert_eq!(ErrorCode(code), ErrorCode::CALL_FAILED);
    assert!(message.contains("callable bug"), "{message}");

    // Unknown ids, including 0 and a removed one.
    for id in [0, 42, rate.get() ^ 1] {
        assert_eq!(
            ErrorCode(probe(id, b"").0),
            ErrorCode::UNKNOWN_CALLABLE,
            "{id}"
        );
    }
    rt.unregister_callable(upper).unwrap();
    assert_eq!(
        ErrorCode(probe(upper.get(), b"x").0),
        ErrorCode::UNKNOWN_CALLABLE
    );
    let e = rt.unregister_callable(upper).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownCallable { id } if *id == upper.get()));
    // A typed callable given input that does not deserialize.
    let (code, _) = probe(rate.get(), b"\x01");
    assert_eq!(ErrorCode(code), ErrorCode::INVALID_INPUT);
    // Nothing trapped.
    assert_eq!(rt.module("user").unwrap().counters.traps, 0);
}

/// A callable unregistered while a guest's call of it runs: that call finishes, the
/// next one is refused.
#[test]
fn a_callable_unregistered_while_it_runs() {
    let rt = Runtime::new(RuntimeConfig::default());
    rt.add("user", pre("callable-user"), ModuleSpec::pooled(2))
        .unwrap();
    let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let id = {
        let (entered, release) = (entered.clone(), release.clone());
        rt.register_callable(move |_, x: f64| -> Result<f64, HostError> {
            entered.wait();
            release.wait();
            Ok(x + 1.0)
        })
        .unwrap()
    };
    std::thread::scope(|s| {
        let call = {
            let rt = rt.clone();
            s.spawn(move || rt.call::<_, f64>("user", "convert", &(id.get(), 1.0)))
        };
        entered.wait();
        rt.unregister_callable(id).unwrap();
        release.wait();
        assert_eq!(call.join().unwrap().unwrap(), 2.0);
    });
    let e = rt
        .call::<_, f64>("user", "convert", &(id.get(), 1.0))
        .unwrap_err();
    assert_eq!(guest_code(&e).0, ErrorCode::UNKNOWN_CALLABLE);
}

/// Guests may list the modules only when granted `discover`: a module importing the
/// list without the grant is refused at `add`, naming the import and the grant.
#[test]
fn discovery_needs_its_grant() {
    let rt = Runtime::new(RuntimeConfig::default());
    let e = rt
        .add("ping", pre("ping"), ModuleSpec::pooled(1))
        .unwrap_err();
    match e.kind() {
        ErrorKind::NotGranted {
            module,
            import,
            grant,
        } => {
            assert_eq!(
                (module.as_str(), import.as_str(), *grant),
                ("ping", "membrane_runtime.modules", "discover")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(rt.module("ping").is_none());

    let rt = rally_runtime(RuntimeConfig::default(), 1);
    let listed: Vec<(String, Vec<String>)> = rt.call("ping", "list", &()).unwrap();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ping", "pong"]);
    assert!(listed[1].1.contains(&"rally".to_string()), "{listed:?}");
}

/// An instance a host makes on its own (no runtime) links the runtime's imports and
/// answers them with `NOT_IN_RUNTIME`, as data.
#[test]
fn outside_a_runtime_the_services_answer_not_in_runtime() {
    let mut ping = pre("ping").instantiate(()).unwrap();
    let e = ping.call::<_, Hit>("whoami", &()).unwrap_err();
    assert_eq!(guest_code(&e).0, ErrorCode::NOT_IN_RUNTIME);
    let unit = membrane_codec::to_payload(&()).unwrap();
    let (code, _): (u32, Vec<u8>) = ping.call("probe", &("pong", "echo", &unit)).unwrap();
    assert_eq!(ErrorCode(code), ErrorCode::NOT_IN_RUNTIME);
    assert!(!ping.is_poisoned());
}

/// A request to `membrane_runtime.call` whose `(module, function)` does not decode is
/// answered with an `INVALID_INPUT` error envelope, not a trap: the module hands that
/// response back as its own output here.
#[test]
fn an_undecodable_call_request_is_an_error_envelope() {
    use crate::hostile::{data, envelope};
    // A payload that starts with a string length running past its end.
    let request = envelope(0x04, &[0x7f, b'x']);
    let wasm = crate::support::wat_module(
        2,
        r#"(import "membrane_runtime" "call" (func $call (param i32 i32 i32 i32) (result i64)))"#,
        &format!(
            r#"{}
  (func (export "run") (param i32 i32) (result i64)
    (call $call (i32.const 256) (i32.const {}) (i32.const 0) (i32.const 0)))"#,
            data(256, &request),
            request.len()
        ),
    );
    let pre = crate::support::engine()
        .load(&wasm)
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap();
    let rt = Runtime::new(RuntimeConfig::default());
    rt.add("raw", pre, ModuleSpec::persistent()).unwrap();
    let e = rt.call_raw("raw", "run", b"").unwrap_err();
    let (code, message) = guest_code(&e);
    assert_eq!(code, ErrorCode::INVALID_INPUT, "{message}");
    assert!(
        message.contains("call request does not decode"),
        "{message}"
    );
    assert_eq!(rt.module("raw").unwrap().counters.traps, 0);
}

/// What one stress operation adds to each module's counters: `(ok, guest errors,
/// traps)` of ping, pong and echo.
type Effect = [[u64; 3]; 3];

/// The stress test: 4 threads × 10 000 calls across three modules with cycles (ping ↔
/// pong rallies), calls relayed to a third module, callees that trap and fail, chains
/// refused at the depth limit. Every call's outcome is checked; afterwards the counters
/// equal the sum of what each call must have done (no call lost or counted twice), and
/// the guests' memory has not grown since the warm-up.
#[test]
fn stress_many_threads_cycles_and_failures() {
    const THREADS: usize = 4;
    const CALLS: usize = 10_000;
    const WARM_UP: usize = 1_000;
    let rt = Runtime::new(RuntimeConfig::default());
    // Deep rallies hold up to 8 instances of each per thread.
    rt.add(
        "ping",
        pre("ping"),
        ping_spec(ModuleSpec::pooled(8 * THREADS)),
    )
    .unwrap();
    rt.add("pong", pre("pong"), ModuleSpec::pooled(8 * THREADS))
        .unwrap();
    rt.add("echo", pre("pong"), ModuleSpec::persistent())
        .unwrap();
    let unit = membrane_codec::to_payload(&()).unwrap();
    let (ping, pong, echo) = (0, 1, 2);
    let (ok, guest, trap) = (0, 1, 2);
    let one = |module: usize, outcome: usize| {
        let mut e: Effect = [[0; 3]; 3];
        e[module][outcome] = 1;
        e
    };
    let sum = |a: Effect, b: Effect| {
        let mut e = a;
        for m in 0..3 {
            for o in 0..3 {
                e[m][o] += b[m][o];
            }
        }
        e
    };
    let max_memory = |rt: &Runtime, module: &str| -> u64 {
        (0..64)
            .map(|_| rt.call::<_, u64>(module, "memory_size", &()).unwrap())
            .max()
            .unwrap()
    };

    let run = |rt: &Runtime, t: usize, i: usize| -> Effect {
        let k = ((t + i) % 4) as u32;
        match (t + i) % 10 {
            // A rally from ping or pong: strokes alternate from the first.
            0 | 1 => {
                let (first, second) = if i.is_multiple_of(2) {
                    (ping, pong)
                } else {
                    (pong, ping)
                };
                let name = ["ping", "pong"][first];
                let hits: Vec<Hit> = rt.call(name, "rally", &k).unwrap();
                assert_eq!(hits.len(), k as usize + 1);
                let mut e: Effect = [[0; 3]; 3];
                e[first][ok] = u64::from(k / 2 + 1);
                e[second][ok] = u64::from(k.div_ceil(2));
                e
            }
            2 | 3 => {
                let input = vec![(i % 251) as u8; i % 300];
                let out: Vec<u8> = rt.call("ping", "relay", &input).unwrap();
                assert_eq!(out, input);
                sum(one(ping, ok), one(echo, ok))
            }
            4 => {
                let (code, _): (u32, Vec<u8>) =
                    rt.call("ping", "probe", &("pong", "trap", &unit)).unwrap();
                assert_eq!(ErrorCode(code), ErrorCode::CALLEE_TRAPPED);
                sum(one(ping, ok), one(pong, trap))
            }
            5 => {
                let (code, _): (u32, Vec<u8>) =
                    rt.call("ping", "probe", &("pong", "fail", &unit)).unwrap();
                assert_eq!(code, 1234);
                sum(one(ping, ok), one(pong, guest))
            }
            6 => {
                let e = rt.call::<_, ()>("pong", "fail", &()).unwrap_err();
                assert_eq!(guest_code(&e).0, ErrorCode(1234));
                one(pong, guest)
            }
            7 => {
                let hit: Hit = rt.call("ping", "whoami", &()).unwrap();
                assert_eq!(hit.depth, 1);
                one(ping, ok)
            }
            8 if i % 100 == 8 => {
                // Past the depth limit (16): 8 strokes each, all failing.
                let e = rt.call::<_, Vec<Hit>>("ping", "rally", &20u32).unwrap_err();
                assert_eq!(guest_code(&e).0, ErrorCode::LIMIT_EXCEEDED);
                let mut e: Effect = [[0; 3]; 3];
                e[ping][guest] = 8;
                e[pong][guest] = 8;
                e
            }
            _ => {
                let out = rt.call_raw("echo", "echo", b"direct").unwrap();
                assert_eq!(out, b"direct");
                one(echo, ok)
            }
        }
    };

    let started = Instant::now();
    let warm = Barrier::new(THREADS + 1);
    let measured = Barrier::new(THREADS + 1);
    let (expected, before) = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (rt, warm, measured) = (rt.clone(), &warm, &measured);
                s.spawn(move || {
                    let mut effect: Effect = [[0; 3]; 3];
                    for i in 0..CALLS {
                        if i == WARM_UP {
                            warm.wait();
                            measured.wait();
                        }
                        effect = sum(effect, run(&rt, t, i));
                    }
                    effect
                })
            })
            .collect();
        warm.wait();
        let before = [max_memory(&rt, "ping"), max_memory(&rt, "pong")];
        measured.wait();
        let expected = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold([[0; 3]; 3], sum);
        (expected, before)
    });
    let elapsed = started.elapsed();

    // The memory probes (64 calls of each module, twice) are counted below with the rest.
    let after = [max_memory(&rt, "ping"), max_memory(&rt, "pong")];
    assert_eq!(after, before, "guest memory grew after the warm-up");
    for (m, name) in ["ping", "pong", "echo"].into_iter().enumerate() {
        let c = rt.module(name).unwrap().counters;
        let probes = if name == "echo" { 0 } else { 128 };
        assert_eq!(
            (c.ok, c.guest_errors, c.traps),
            (
                expected[m][ok] + probes,
                expected[m][guest],
                expected[m][trap]
            ),
            "{name}: {c:?}"
        );
        assert_eq!(
            (c.limits_hit, c.busy, c.other_errors, c.in_flight),
            (0, 0, 0, 0),
            "{name}"
        );
        assert_eq!(c.calls, c.ok + c.guest_errors + c.traps, "{name}");
    }
    eprintln!(
        "stress: {} top-level calls, {} module calls in {elapsed:?}",
        THREADS * CALLS,
        rt.modules().iter().map(|m| m.counters.calls).sum::<u64>()
    );
}

/// `membrane_guest::forward` hands the callee's output on as the caller's own (no copy
/// in the caller), `call_bytes_with(.., Output::copy_of)` copies it once: both return
/// exactly the callee's output at every size; a callee's failure is the caller's error.
#[test]
fn a_relay_hands_the_callees_output_on() {
    let rt = Runtime::new(RuntimeConfig::default());
    rt.add("ping", pre("ping"), ping_spec(ModuleSpec::persistent()))
        .unwrap();
    let e = rt.call_raw("ping", "relay", b"x").unwrap_err();
    assert_eq!(guest_code(&e).0, ErrorCode::UNKNOWN_MODULE);
    rt.add("echo", pre("pong"), ModuleSpec::persistent())
        .unwrap();
    for size in [0, 1, 63, 64, 1000, 5000, 100_000, 1 << 20] {
        let input: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        for function in ["relay", "relay_copy"] {
            let out = rt.call_raw("ping", function, &input).unwrap();
            assert!(out == input, "{function} of {size} bytes");
        }
    }
    let c = rt.module("echo").unwrap().counters;
    assert_eq!((c.calls, c.ok), (16, 16));
}
