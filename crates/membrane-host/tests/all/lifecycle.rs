//! Lifecycle hooks on the real `lifecycle` guest: start on every instance before it
//! serves (its state seen by the first call), a failed start refusing `add` and
//! `replace`, stop on remove, replace, the runtime's drop and after each fresh-per-call
//! call, failed stops counted, poisoned instances not stopped, and the same hooks run
//! by hand on a single `Instance`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use membrane_host::{
    ErrorCode, ErrorKind, HostError, HostFunctions, ModuleSpec, Runtime, RuntimeConfig, TrapKind,
    WithState,
};

use crate::support::module;

/// What the guest's stop hooks told the host: `(configuration, count calls served)`.
type Log = Arc<Mutex<Vec<(String, u64)>>>;

/// The host functions of the `lifecycle` guest: `config` answers the instance's host
/// state, `stopped` records what a stop hook tells into `log`.
fn host(log: &Log) -> HostFunctions<String> {
    let log = log.clone();
    let mut host = HostFunctions::<String>::new();
    host.register("config", |ctx, (): ()| -> Result<String, HostError> {
        Ok(ctx.state().clone())
    })
    .register(
        "stopped",
        move |_ctx, stop: (String, u64)| -> Result<(), HostError> {
            log.lock().unwrap().push(stop);
            Ok(())
        },
    );
    host
}

/// The `lifecycle` guest for a runtime, each instance configured with `config`, its
/// stop hooks recorded in `log`.
fn lifecycle(config: &'static str, log: &Log) -> WithState<String> {
    module("lifecycle")
        .prepare(&host(log))
        .unwrap()
        .with_state(move || config.to_string())
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default().max_wait(Duration::from_secs(60)))
}

fn stops(log: &Log) -> Vec<(String, u64)> {
    log.lock().unwrap().clone()
}

fn stop(config: &str, calls: u64) -> (String, u64) {
    (config.to_string(), calls)
}

/// `count`: `(calls served by the instance, times start ran in it)`.
fn count(rt: &Runtime, name: &str) -> (u64, u32) {
    rt.call(name, "count", &()).unwrap()
}

/// Start ran once in the instance `add` made, before its first call, which sees what
/// start set up.
#[test]
fn start_runs_before_the_first_call() {
    let log = Log::default();
    let rt = runtime();
    rt.add("m", lifecycle("v1", &log), ModuleSpec::persistent())
        .unwrap();
    let configured: String = rt.call("m", "configured", &()).unwrap();
    assert_eq!(configured, "v1");
    assert_eq!(count(&rt, "m"), (1, 1));
    assert_eq!(count(&rt, "m"), (2, 1));
    assert!(stops(&log).is_empty());
    let c = rt.module("m").unwrap().counters;
    // Hooks are not calls.
    assert_eq!((c.calls, c.ok, c.hook_failures), (3, 3, 0));
}

/// A start that fails refuses `add` with a clear error: the guest's own code and
/// message, or the trap or panic, and within the module's limits. No module is left,
/// and the instance, never started, is not stopped.
#[test]
fn a_failed_start_refuses_add() {
    let log = Log::default();
    let rt = runtime();
    let e = rt
        .add("m", lifecycle("fail-start", &log), ModuleSpec::persistent())
        .unwrap_err();
    match e.kind() {
        ErrorKind::Guest { code, message } => {
            assert_eq!(*code, ErrorCode::from(1100));
            assert_eq!(message, "refusing to start with `fail-start`");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "guest error 1100: refusing to start with `fail-start`"
    );
    let e = rt
        .add(
            "m",
            lifecycle("panic-start", &log),
            ModuleSpec::persistent(),
        )
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Panic { message } if message.contains("start panicked on purpose")),
        "{e}"
    );
    let e = rt
        .add("m", lifecycle("trap-start", &log), ModuleSpec::pooled(2))
        .unwrap_err();
    assert!(e.is_trap(&TrapKind::Unreachable), "{e}");
    let e = rt
        .add(
            "m",
            lifecycle("spin-start", &log),
            ModuleSpec::fresh_per_call().fuel(Some(1_000_000)),
        )
        .unwrap_err();
    assert!(e.is_trap(&TrapKind::OutOfFuel), "{e}");
    assert!(rt.module("m").is_none());
    assert!(rt.modules().is_empty());
    assert!(stops(&log).is_empty());
}

/// A `replace` whose start fails leaves the old version serving, its instance and
/// state untouched; the failure is counted.
#[test]
fn a_replace_whose_start_fails_keeps_the_old_version() {
    let log = Log::default();
    let rt = runtime();
    rt.add("m", lifecycle("v1", &log), ModuleSpec::persistent())
        .unwrap();
    assert_eq!(count(&rt, "m"), (1, 1));
    let e = rt.replace("m", lifecycle("fail-start", &log)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Guest { code, .. } if code.0 == 1100),
        "{e}"
    );
    let configured: String = rt.call("m", "configured", &()).unwrap();
    assert_eq!(configured, "v1");
    assert_eq!(count(&rt, "m"), (2, 1));
    assert!(stops(&log).is_empty());
    assert_eq!(rt.module("m").unwrap().counters.hook_failures, 1);
}

/// Stop runs on the instances the runtime drops: the old version's at `replace`, the
/// module's at `remove`, every module's when the runtime is dropped.
#[test]
fn stop_runs_on_replace_remove_and_drop() {
    let log = Log::default();
    let rt = runtime();
    rt.add("m", lifecycle("a", &log), ModuleSpec::persistent())
        .unwrap();
    count(&rt, "m");
    count(&rt, "m");
    rt.replace("m", lifecycle("b", &log)).unwrap();
    assert_eq!(stops(&log), [stop("a", 2)]);
    assert_eq!(count(&rt, "m"), (1, 1));
    rt.remove("m").unwrap();
    assert_eq!(stops(&log), [stop("a", 2), stop("b", 1)]);

    rt.add("c", lifecycle("c", &log), ModuleSpec::pooled(4))
        .unwrap();
    rt.add("d", lifecycle("d", &log), ModuleSpec::persistent())
        .unwrap();
    count(&rt, "d");
    let clone = rt.clone();
    drop(rt);
    // A clone keeps the runtime alive.
    assert_eq!(stops(&log).len(), 2);
    drop(clone);
    assert_eq!(
        stops(&log),
        [stop("a", 2), stop("b", 1), stop("c", 0), stop("d", 1)]
    );
}

/// A fresh-per-call module starts and stops an instance around each call (and the one
/// `add` made to check the module).
#[test]
fn fresh_per_call_starts_and_stops_around_each_call() {
    let log = Log::default();
    let rt = runtime();
    rt.add("f", lifecycle("f", &log), ModuleSpec::fresh_per_call())
        .unwrap();
    assert_eq!(stops(&log), [stop("f", 0)]);
    for _ in 0..3 {
        assert_eq!(count(&rt, "f"), (1, 1));
    }
    assert_eq!(
        stops(&log),
        [stop("f", 0), stop("f", 1), stop("f", 1), stop("f", 1)]
    );
}

/// A stop that fails is counted, and logged: the call or the swap it follows
/// succeeds, and nothing panics.
#[test]
fn a_failed_stop_is_counted_not_returned() {
    let log = Log::default();
    let rt = runtime();
    rt.add(
        "f",
        lifecycle("fail-stop", &log),
        ModuleSpec::fresh_per_call(),
    )
    .unwrap();
    assert_eq!(count(&rt, "f"), (1, 1));
    let c = rt.module("f").unwrap().counters;
    assert_eq!((c.calls, c.ok, c.hook_failures), (1, 1, 2));

    rt.add("p", lifecycle("fail-stop", &log), ModuleSpec::persistent())
        .unwrap();
    rt.replace("p", lifecycle("ok", &log)).unwrap();
    assert_eq!(rt.module("p").unwrap().counters.hook_failures, 1);
    // Each failing stop told the host before failing.
    assert_eq!(stops(&log).len(), 3);
}

/// An instance poisoned by a call is dropped without its stop hook; the fresh
/// instance that replaces it is started, and stopped when the module goes.
#[test]
fn a_poisoned_instance_is_not_stopped() {
    let log = Log::default();
    let rt = runtime();
    rt.add("m", lifecycle("p", &log), ModuleSpec::persistent())
        .unwrap();
    assert_eq!(count(&rt, "m"), (1, 1));
    let e = rt.call::<_, ()>("m", "crash", &()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Panic { .. }), "{e}");
    assert_eq!(count(&rt, "m"), (1, 1));
    rt.remove("m").unwrap();
    // Only the second instance stopped (after its one `count` call).
    assert_eq!(stops(&log), [stop("p", 1)]);
}

/// A module without hooks runs as before: nothing to start or stop, nothing counted;
/// on an `Instance`, `start` and `stop` do nothing.
#[test]
fn a_module_without_hooks_behaves_as_before() {
    let rt = runtime();
    let echo = || module("echo").prepare(&HostFunctions::<()>::new()).unwrap();
    for (name, spec) in [
        ("p", ModuleSpec::persistent()),
        ("f", ModuleSpec::fresh_per_call()),
    ] {
        rt.add(name, echo(), spec).unwrap();
        assert_eq!(rt.call_raw(name, "reverse", b"abc").unwrap(), b"cba");
        rt.replace(name, echo()).unwrap();
        assert_eq!(rt.call_raw(name, "reverse", b"abc").unwrap(), b"cba");
        let c = rt.module(name).unwrap().counters;
        assert_eq!((c.calls, c.ok, c.hook_failures), (2, 2, 0));
        rt.remove(name).unwrap();
    }
    let mut instance = echo().instantiate(()).unwrap();
    instance.start().unwrap();
    assert_eq!(instance.call_raw("reverse", b"abc").unwrap(), b"cba");
    instance.stop().unwrap();
}

/// A single `Instance` runs no hook by itself: the host runs them with `start` and
/// `stop`.
#[test]
fn an_instance_runs_hooks_when_asked() {
    let log = Log::default();
    let pre = module("lifecycle").prepare(&host(&log)).unwrap();
    let mut instance = pre.instantiate("single".to_string()).unwrap();
    let e = instance.call::<_, String>("configured", &()).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Guest { message, .. } if message == "start did not run"),
        "{e}"
    );
    instance.start().unwrap();
    assert_eq!(
        instance.call::<_, String>("configured", &()).unwrap(),
        "single"
    );
    assert_eq!(
        instance.call::<_, (u64, u32)>("count", &()).unwrap(),
        (1, 1)
    );
    instance.stop().unwrap();
    assert_eq!(stops(&log), [stop("single", 1)]);
    drop(instance);
    // Dropping an instance runs nothing.
    assert_eq!(stops(&log).len(), 1);

    let mut failing = pre.instantiate("fail-stop".to_string()).unwrap();
    failing.start().unwrap();
    let e = failing.stop().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Guest { code, .. } if code.0 == 1101),
        "{e}"
    );
    // A guest error poisons nothing.
    assert!(!failing.is_poisoned());
}
