//! The runtime over a fake executor: names, policies, swaps, removal and counters
//! without wasm (the real guests are exercised by `membrane-host`'s tests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use super::*;
use crate::TrapKind;
use crate::executor::{Canceller, GuestInstance, Hook, LimitOverrides};

/// A module whose instances answer `tag` with the module's tag, `count` with how many
/// calls the instance served, `trap` by trapping (and poisoning themselves), `fail`
/// with a guest error, `wait` by meeting the test twice at the hooks' gate (once
/// inside the call, once to be let go) and `cross` by meeting others once at the gate,
/// then calling `tag` of the module named by the input through the runtime (a callee's
/// failure comes back as the caller's guest error, with the code the runtime gave it).
/// An instance refuses calls until it started.
struct FakeModule {
    tag: &'static [u8],
    made: Arc<AtomicUsize>,
    refuse_timeout: bool,
    hooks: Arc<Hooks>,
}

impl FakeModule {
    fn new(tag: &'static [u8]) -> FakeModule {
        FakeModule::with_hooks(tag, Hooks::new())
    }

    fn with_hooks(tag: &'static [u8], hooks: Hooks) -> FakeModule {
        FakeModule {
            tag,
            made: Arc::default(),
            refuse_timeout: false,
            hooks: Arc::new(hooks),
        }
    }
}

/// What a fake module's lifecycle hooks do, and what they did; shared by its
/// instances.
struct Hooks {
    /// Start hooks that succeeded.
    started: AtomicUsize,
    /// Stop hooks that ran (failed or not).
    stopped: AtomicUsize,
    /// Start hooks fail once this many succeeded.
    fail_start_after: Option<usize>,
    /// Stop hooks fail.
    fail_stop: bool,
    /// Run by every stop hook.
    on_stop: Option<Box<dyn Fn() + Send + Sync>>,
    /// Where `wait` calls meet the test.
    gate: Barrier,
}

impl Hooks {
    fn new() -> Hooks {
        Hooks::gated(2)
    }

    /// Hooks whose gate lets `n - 1` calls of `wait` and the test meet.
    fn gated(n: usize) -> Hooks {
        Hooks {
            started: AtomicUsize::new(0),
            stopped: AtomicUsize::new(0),
            fail_start_after: None,
            fail_stop: false,
            on_stop: None,
            gate: Barrier::new(n),
        }
    }

    /// `(started, stopped)`.
    fn counts(&self) -> (usize, usize) {
        (
            self.started.load(Ordering::SeqCst),
            self.stopped.load(Ordering::SeqCst),
        )
    }
}

struct FakeInstantiator {
    tag: &'static [u8],
    made: Arc<AtomicUsize>,
    hooks: Arc<Hooks>,
    link: RuntimeLink,
}

struct FakeInstance {
    tag: &'static [u8],
    served: u8,
    poisoned: bool,
    started: bool,
    hooks: Arc<Hooks>,
    link: RuntimeLink,
}

struct NoCancel;

impl Canceller for NoCancel {
    fn cancel(&self) {}
}

impl RuntimeModule for FakeModule {
    fn function_names(&self) -> Vec<String> {
        ["tag", "count", "trap", "fail"].map(String::from).to_vec()
    }

    fn content_hash(&self) -> ContentHash {
        ContentHash([self.tag[0]; 32])
    }

    fn imports(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn handles_messages(&self) -> bool {
        false
    }

    fn limited(
        &self,
        overrides: &LimitOverrides,
        link: &RuntimeLink,
    ) -> Result<Box<dyn Instantiator>> {
        if self.refuse_timeout && overrides.timeout.is_some() {
            return Err(ErrorKind::Config {
                reason: "no clock".into(),
            }
            .into());
        }
        Ok(Box::new(FakeInstantiator {
            tag: self.tag,
            made: self.made.clone(),
            hooks: self.hooks.clone(),
            link: link.clone(),
        }))
    }
}

impl Instantiator for FakeInstantiator {
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
        self.made.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeInstance {
            tag: self.tag,
            served: 0,
            poisoned: false,
            started: false,
            hooks: self.hooks.clone(),
            link: self.link.clone(),
        }))
    }
}

impl GuestInstance for FakeInstance {
    fn call_envelope(
        &mut self,
        ctx: CallContext,
        name: &str,
        input: &[u8],
        read: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        if !self.started {
            return Err(Error::host("called before its start hook ran"));
        }
        self.served += 1;
        match name {
            "tag" => read(self.tag),
            "count" => read(&[self.served]),
            "wait" => {
                self.hooks.gate.wait();
                self.hooks.gate.wait();
                read(self.tag);
            }
            "cross" => {
                self.hooks.gate.wait();
                let callee = std::str::from_utf8(input).map_err(Error::host)?;
                let ctx = CallContext::routed(
                    self.link.module().clone(),
                    ctx.request_id,
                    ctx.depth + 1,
                    ctx.deadline,
                );
                let tag = self
                    .link
                    .router()
                    .call(ctx, callee, "tag", b"")
                    .map_err(|e| ErrorKind::Guest {
                        code: e.code,
                        message: e.message,
                    })?;
                read(&tag);
            }
            "trap" => {
                self.poisoned = true;
                return Err(ErrorKind::Trap(TrapKind::Unreachable).into());
            }
            "fail" => {
                return Err(ErrorKind::Guest {
                    code: membrane_types::ErrorCode(1001),
                    message: "failed".into(),
                }
                .into());
            }
            // As an executor does: refused before any guest code runs.
            _ => {
                self.served -= 1;
                return Err(ErrorKind::UnknownFunction {
                    name: name.to_string(),
                }
                .into());
            }
        }
        Ok(())
    }

    fn run_hook(&mut self, hook: Hook) -> Result<()> {
        let hooks = &self.hooks;
        match hook {
            Hook::Start => {
                if hooks
                    .fail_start_after
                    .is_some_and(|n| hooks.started.load(Ordering::SeqCst) >= n)
                {
                    return Err(ErrorKind::Guest {
                        code: membrane_types::ErrorCode(1100),
                        message: "cannot start".into(),
                    }
                    .into());
                }
                hooks.started.fetch_add(1, Ordering::SeqCst);
                self.started = true;
            }
            Hook::Stop => {
                assert!(self.started && !self.poisoned, "stopped wrongly");
                hooks.stopped.fetch_add(1, Ordering::SeqCst);
                if let Some(on_stop) = &hooks.on_stop {
                    on_stop();
                }
                if hooks.fail_stop {
                    return Err(ErrorKind::Guest {
                        code: membrane_types::ErrorCode(1101),
                        message: "cannot stop".into(),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    fn canceller(&self) -> Box<dyn Canceller> {
        Box::new(NoCancel)
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default().max_wait(Duration::from_millis(10)))
}

#[test]
fn the_runtime_is_send_sync_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Runtime>();
    assert_eq!(size_of::<Runtime>(), size_of::<usize>());
}

/// Unknown modules and functions, duplicates and invalid names fail with their kind.
#[test]
fn names_are_checked() {
    let rt = runtime();
    rt.add("m", FakeModule::new(b"a"), ModuleSpec::persistent())
        .unwrap();
    let e = rt
        .add("m", FakeModule::new(b"b"), ModuleSpec::persistent())
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::DuplicateModule { name } if name == "m"),
        "{e}"
    );
    let e = rt
        .add("bad name", FakeModule::new(b"b"), ModuleSpec::persistent())
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidModuleName { .. }),
        "{e}"
    );
    let e = rt.call_raw("n", "tag", b"").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownModule { name } if name == "n"),
        "{e}"
    );
    let e = rt.call_raw("m", "nope", b"").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownFunction { name } if name == "nope"),
        "{e}"
    );
    // Refusals before a call runs are not counted.
    assert_eq!(rt.module("m").unwrap().counters.calls, 0);
}

/// A persistent module keeps one instance; a pooled module makes instances up to its
/// bound; a fresh-per-call module makes one per call.
#[test]
fn policies_make_instances_as_they_say() {
    let rt = runtime();
    for (name, spec) in [
        ("p", ModuleSpec::persistent()),
        ("f", ModuleSpec::fresh_per_call()),
    ] {
        let module = FakeModule::new(b"a");
        let made = module.made.clone();
        rt.add(name, module, spec.clone()).unwrap();
        let counts: Vec<u8> = (0..3)
            .map(|_| rt.call_raw(name, "count", b"").unwrap()[0])
            .collect();
        match spec.policy {
            InstancePolicy::Persistent => {
                assert_eq!(counts, [1, 2, 3]);
                assert_eq!(made.load(Ordering::SeqCst), 1);
            }
            _ => {
                assert_eq!(counts, [1, 1, 1]);
                // One made by `add` to check the module, one per call.
                assert_eq!(made.load(Ordering::SeqCst), 4);
            }
        }
    }
    let e = rt
        .add("z", FakeModule::new(b"a"), ModuleSpec::pooled(0))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidSpec { .. }), "{e}");
}

/// A trap drops only the instance it poisoned; the next call gets a fresh one.
#[test]
fn a_trap_replaces_the_instance() {
    let rt = runtime();
    let module = FakeModule::new(b"a");
    let made = module.made.clone();
    rt.add("m", module, ModuleSpec::persistent()).unwrap();
    assert_eq!(rt.call_raw("m", "count", b"").unwrap(), [1]);
    let e = rt.call_raw("m", "trap", b"").unwrap_err();
    assert!(e.is_trap(&TrapKind::Unreachable), "{e}");
    assert_eq!(rt.call_raw("m", "count", b"").unwrap(), [1]);
    assert_eq!(made.load(Ordering::SeqCst), 2);
    let e = rt.call_raw("m", "fail", b"").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Guest { .. }), "{e}");
    // A guest error does not poison: the same instance serves the next call.
    assert_eq!(rt.call_raw("m", "count", b"").unwrap(), [3]);
    let c = rt.module("m").unwrap().counters;
    assert_eq!((c.calls, c.ok, c.traps, c.guest_errors), (5, 3, 1, 1));
    assert_eq!(c.last_error.as_deref(), Some("guest error 1001: failed"));
}

/// `replace` serves new calls from the new version and keeps spec and counters;
/// `remove` refuses new calls; both fail on an unknown module.
#[test]
fn replace_and_remove() {
    let rt = runtime();
    rt.add("m", FakeModule::new(b"a"), ModuleSpec::pooled(2))
        .unwrap();
    assert_eq!(rt.call_raw("m", "tag", b"").unwrap(), b"a");
    rt.replace("m", FakeModule::new(b"b")).unwrap();
    assert_eq!(rt.call_raw("m", "tag", b"").unwrap(), b"b");
    let info = rt.module("m").unwrap();
    assert_eq!(info.hash, ContentHash([b'b'; 32]));
    assert_eq!(info.policy, InstancePolicy::Pooled { max: 2 });
    assert_eq!(info.counters.calls, 2);
    rt.remove("m").unwrap();
    let e = rt.call_raw("m", "tag", b"").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownModule { .. }), "{e}");
    for e in [
        rt.remove("m").unwrap_err(),
        rt.replace("m", FakeModule::new(b"c")).unwrap_err(),
    ] {
        assert!(matches!(e.kind(), ErrorKind::UnknownModule { .. }), "{e}");
    }
    assert!(rt.modules().is_empty());
    // The name is free again.
    rt.add("m", FakeModule::new(b"c"), ModuleSpec::persistent())
        .unwrap();
    assert_eq!(rt.module("m").unwrap().counters.calls, 0);
}

/// An executor's refusal of the limits refuses the add, and a failed replace keeps the
/// old version.
#[test]
fn refused_limits_refuse_the_add() {
    let rt = runtime();
    let module = FakeModule {
        refuse_timeout: true,
        ..FakeModule::new(b"a")
    };
    let spec = ModuleSpec::persistent().timeout(Some(Duration::from_millis(5)));
    let e = rt.add("m", module, spec.clone()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Config { .. }), "{e}");
    assert!(rt.module("m").is_none());
    rt.add("m", FakeModule::new(b"a"), spec).unwrap();
    let refusing = FakeModule {
        refuse_timeout: true,
        ..FakeModule::new(b"b")
    };
    assert!(rt.replace("m", refusing).is_err());
    assert_eq!(rt.call_raw("m", "tag", b"").unwrap(), b"a");
}

/// Typed calls: the fake's `count` output is one byte, a postcard `u8`.
#[test]
fn typed_calls() {
    let rt = runtime();
    rt.add("m", FakeModule::new(b"a"), ModuleSpec::persistent())
        .unwrap();
    let n: u8 = rt.call("m", "count", &()).unwrap();
    assert_eq!(n, 1);
    // `tag` returns `a` (0x61), not a valid postcard `bool`.
    let e = rt.call::<_, bool>("m", "tag", &()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Deserialize(_)), "{e}");
}

/// Start runs on every instance the runtime makes, before it serves a call: the first
/// at `add`, then as many as each policy makes. Hooks are not calls.
#[test]
fn start_runs_on_every_instance_before_it_serves() {
    let rt = runtime();
    for (name, spec, started) in [
        ("p", ModuleSpec::persistent(), 1),
        // One at `add`, one per call.
        ("f", ModuleSpec::fresh_per_call(), 4),
    ] {
        let module = FakeModule::new(b"a");
        let hooks = module.hooks.clone();
        rt.add(name, module, spec).unwrap();
        assert_eq!(hooks.counts().0, 1, "{name}");
        for _ in 0..3 {
            // A fake instance refuses calls before it started.
            assert_eq!(rt.call_raw(name, "tag", b"").unwrap(), b"a");
        }
        assert_eq!(hooks.counts().0, started, "{name}");
        let c = rt.module(name).unwrap().counters;
        assert_eq!((c.calls, c.ok, c.hook_failures), (3, 3, 0), "{name}");
    }

    // Two calls at once in a pool of two: the second instance is started too.
    let module = FakeModule::with_hooks(b"a", Hooks::gated(3));
    let hooks = module.hooks.clone();
    rt.add("pool", module, ModuleSpec::pooled(2)).unwrap();
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| rt.call_raw("pool", "wait", b"")))
            .collect();
        // Both calls are inside an instance at once.
        hooks.gate.wait();
        assert_eq!(hooks.counts(), (2, 0));
        hooks.gate.wait();
        for call in calls {
            assert_eq!(call.join().unwrap().unwrap(), b"a");
        }
    });
}

/// A start that fails refuses `add` with the guest's error (no module is left) and
/// `replace` (the old version keeps serving); an instance made later whose start
/// fails fails its call, counted, and is dropped without stop.
#[test]
fn a_failed_start_refuses_the_module_or_fails_the_call() {
    let rt = runtime();
    let failing = |after| Hooks {
        fail_start_after: Some(after),
        ..Hooks::new()
    };
    let is_start_error = |e: &Error| {
        matches!(e.kind(), ErrorKind::Guest { code, message }
            if code.0 == 1100 && message == "cannot start")
    };
    let e = rt
        .add(
            "m",
            FakeModule::with_hooks(b"a", failing(0)),
            ModuleSpec::persistent(),
        )
        .unwrap_err();
    assert!(is_start_error(&e), "{e}");
    assert!(rt.module("m").is_none());

    rt.add("m", FakeModule::new(b"a"), ModuleSpec::persistent())
        .unwrap();
    let e = rt
        .replace("m", FakeModule::with_hooks(b"b", failing(0)))
        .unwrap_err();
    assert!(is_start_error(&e), "{e}");
    assert_eq!(rt.call_raw("m", "tag", b"").unwrap(), b"a");
    let c = rt.module("m").unwrap().counters;
    assert_eq!((c.calls, c.ok, c.hook_failures), (1, 1, 1));

    // The instance `add` makes starts; the one made for the first call does not.
    let module = FakeModule::with_hooks(b"f", failing(1));
    let hooks = module.hooks.clone();
    rt.add("f", module, ModuleSpec::fresh_per_call()).unwrap();
    let e = rt.call_raw("f", "tag", b"").unwrap_err();
    assert!(is_start_error(&e), "{e}");
    let c = rt.module("f").unwrap().counters;
    assert_eq!((c.calls, c.guest_errors, c.hook_failures), (1, 1, 1));
    // Started once (at `add`) and stopped once (that instance, at `add`).
    assert_eq!(hooks.counts(), (1, 1));
}

/// Stop runs on every started instance the runtime drops: the idle instances of a
/// removed, swapped-out or dropped module, and a fresh-per-call instance after its
/// call; not a poisoned instance.
#[test]
fn stop_runs_when_the_runtime_drops_an_instance() {
    let rt = runtime();
    let module = FakeModule::new(b"a");
    let removed = module.hooks.clone();
    rt.add("removed", module, ModuleSpec::persistent()).unwrap();
    rt.call_raw("removed", "tag", b"").unwrap();
    assert_eq!(removed.counts(), (1, 0));
    rt.remove("removed").unwrap();
    assert_eq!(removed.counts(), (1, 1));

    let module = FakeModule::new(b"a");
    let old = module.hooks.clone();
    rt.add("swapped", module, ModuleSpec::pooled(3)).unwrap();
    let module = FakeModule::new(b"b");
    let new = module.hooks.clone();
    rt.replace("swapped", module).unwrap();
    assert_eq!((old.counts(), new.counts()), ((1, 1), (1, 0)));

    let module = FakeModule::new(b"a");
    let fresh = module.hooks.clone();
    rt.add("fresh", module, ModuleSpec::fresh_per_call())
        .unwrap();
    assert_eq!(fresh.counts(), (1, 1));
    rt.call_raw("fresh", "tag", b"").unwrap();
    // Even a call of a function the module does not have ran on a started instance.
    rt.call_raw("fresh", "nope", b"").unwrap_err();
    assert_eq!(fresh.counts(), (3, 3));
    // A trapped instance runs no more code.
    rt.call_raw("fresh", "trap", b"").unwrap_err();
    assert_eq!(fresh.counts(), (4, 3));

    let module = FakeModule::new(b"a");
    let poisoned = module.hooks.clone();
    rt.add("poisoned", module, ModuleSpec::persistent())
        .unwrap();
    rt.call_raw("poisoned", "trap", b"").unwrap_err();
    rt.call_raw("poisoned", "tag", b"").unwrap();
    assert_eq!(poisoned.counts(), (2, 0));

    drop(rt);
    // The dropped runtime stopped what it held: the new "swapped" version, the
    // "poisoned" module's healthy instance.
    assert_eq!((new.counts(), poisoned.counts()), ((1, 1), (2, 1)));
    assert_eq!(fresh.counts(), (4, 3));
}

/// The instances of a swapped-out version that a call still holds are stopped when the
/// last call on it ends, not before.
#[test]
fn stop_waits_for_the_last_call_of_a_version() {
    let rt = runtime();
    let module = FakeModule::new(b"a");
    let old = module.hooks.clone();
    rt.add("m", module, ModuleSpec::persistent()).unwrap();
    std::thread::scope(|s| {
        let call = s.spawn(|| rt.call_raw("m", "wait", b""));
        old.gate.wait();
        rt.replace("m", FakeModule::new(b"b")).unwrap();
        assert_eq!(rt.call_raw("m", "tag", b"").unwrap(), b"b");
        assert_eq!(old.counts(), (1, 0));
        old.gate.wait();
        // The old version served the call that held it, then stopped its instance.
        assert_eq!(call.join().unwrap().unwrap(), b"a");
    });
    assert_eq!(old.counts(), (1, 1));
}

/// A failed stop is logged and counted, and changes nothing else: the call it follows
/// succeeded, the replace went through.
#[test]
fn a_failed_stop_is_logged_and_counted() {
    let rt = runtime();
    let failing = || Hooks {
        fail_stop: true,
        ..Hooks::new()
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::with_default(Capture(events.clone()), || {
        rt.add(
            "f",
            FakeModule::with_hooks(b"a", failing()),
            ModuleSpec::fresh_per_call(),
        )
        .unwrap();
        assert_eq!(rt.call_raw("f", "tag", b"").unwrap(), b"a");
        rt.add(
            "p",
            FakeModule::with_hooks(b"a", failing()),
            ModuleSpec::persistent(),
        )
        .unwrap();
        rt.replace("p", FakeModule::new(b"b")).unwrap();
    });
    let c = rt.module("f").unwrap().counters;
    assert_eq!((c.calls, c.ok, c.hook_failures), (1, 1, 2));
    let c = rt.module("p").unwrap().counters;
    assert_eq!((c.calls, c.hook_failures), (0, 1));
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    for (event, module) in events.iter().zip(["f", "f", "p"]) {
        assert!(
            event.starts_with("WARN ")
                && event.contains(&format!("module=\"{module}\""))
                && event.contains("error=guest error 1101: cannot stop")
                && event.contains("the stop hook of an instance failed"),
            "{event}"
        );
    }
}

/// Stop hooks run outside every lock of the runtime: one that uses the runtime (looks
/// modules up, calls one) from `remove`, `replace` and a call's end does not deadlock.
#[test]
fn stop_runs_outside_every_lock() {
    let rt = runtime();
    rt.add("other", FakeModule::new(b"o"), ModuleSpec::persistent())
        .unwrap();
    let reentrant = |rt: &Runtime| {
        let rt = rt.clone();
        Hooks {
            on_stop: Some(Box::new(move || {
                assert!(!rt.modules().is_empty());
                assert_eq!(rt.call_raw("other", "tag", b"").unwrap(), b"o");
            })),
            ..Hooks::new()
        }
    };
    let (done, finished) = std::sync::mpsc::channel();
    let worker = {
        let rt = rt.clone();
        std::thread::spawn(move || {
            let module = FakeModule::with_hooks(b"a", reentrant(&rt));
            let stops = module.hooks.clone();
            rt.add("m", module, ModuleSpec::pooled(2)).unwrap();
            rt.replace("m", FakeModule::with_hooks(b"b", reentrant(&rt)))
                .unwrap();
            rt.remove("m").unwrap();
            let module = FakeModule::with_hooks(b"f", reentrant(&rt));
            let fresh = module.hooks.clone();
            rt.add("f", module, ModuleSpec::fresh_per_call()).unwrap();
            rt.call_raw("f", "tag", b"").unwrap();
            rt.remove("f").unwrap();
            done.send((stops.counts(), fresh.counts())).unwrap();
        })
    };
    let counts = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("a stop hook that uses the runtime deadlocked");
    worker.join().unwrap();
    assert_eq!(counts, ((1, 1), (2, 2)));
}

/// A tracing subscriber that keeps every event as `LEVEL field=value ...`.
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let mut fields = Fields(event.metadata().level().to_string());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs `calls` (module, input of `cross`) at once, one thread each, on `rt`; returns
/// each call's outcome: its output, or the code and message of its guest error (any
/// other error fails the test), and how long they took.
fn crossing(rt: &Runtime, calls: &[(&str, &str)]) -> (Vec<Result<Vec<u8>, String>>, Duration) {
    let started = std::time::Instant::now();
    let outcomes = std::thread::scope(|s| {
        let threads: Vec<_> = calls
            .iter()
            .map(|&(module, callee)| {
                s.spawn(
                    move || match rt.call_raw(module, "cross", callee.as_bytes()) {
                        Ok(out) => Ok(out),
                        Err(e) => match e.kind() {
                            ErrorKind::Guest { code, message } => {
                                assert_eq!(*code, membrane_types::ErrorCode::BUSY, "{message}");
                                Err(message.clone())
                            }
                            other => panic!("{other:?}"),
                        },
                    },
                )
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    (outcomes, started.elapsed())
}

/// A module's fake with the hooks (and gate) `hooks`.
fn sharing(tag: &'static [u8], hooks: &Arc<Hooks>) -> FakeModule {
    FakeModule {
        hooks: hooks.clone(),
        ..FakeModule::new(tag)
    }
}

/// A→B on one thread while B→A runs on another, both `Persistent`, each call holding its
/// module's instance when it calls the other: one of the routed calls fails at once
/// with `Deadlock` (`BUSY` for its guest, which relays it), the other is served once
/// that chain lets go; the failed wait counts in the callee's `busy`.
#[test]
fn crossing_calls_between_persistent_modules_fail_one_at_once() {
    for _ in 0..10 {
        let rt = Runtime::new(RuntimeConfig::default().max_wait(Duration::from_secs(60)));
        let hooks = Arc::new(Hooks::gated(2));
        rt.add("a", sharing(b"a", &hooks), ModuleSpec::persistent())
            .unwrap();
        rt.add("b", sharing(b"b", &hooks), ModuleSpec::persistent())
            .unwrap();
        let (outcomes, took) = crossing(&rt, &[("a", "b"), ("b", "a")]);
        // Far below the minute either would have waited.
        assert!(took < Duration::from_secs(10), "{took:?}");
        let (ok, failed): (Vec<_>, Vec<_>) = outcomes.iter().partition(|o| o.is_ok());
        assert_eq!((ok.len(), failed.len()), (1, 1), "{outcomes:?}");
        let message = failed[0].as_ref().unwrap_err();
        let (caller, callee) = if outcomes[0].is_err() {
            ("a", "b")
        } else {
            ("b", "a")
        };
        assert!(
            message.starts_with(&format!(
                "call to {callee}.tag failed: deadlock: this call waits for module `{callee}` (1 instance(s), all in use) in a cycle of 2 call chains"
            )),
            "{message}"
        );
        // The other chain's call of the failed chain's module was served.
        assert_eq!(*ok[0].as_ref().unwrap(), caller.as_bytes());
        let (caller, callee) = (
            rt.module(caller).unwrap().counters,
            rt.module(callee).unwrap().counters,
        );
        assert_eq!((caller.calls, caller.guest_errors, caller.busy), (2, 1, 0));
        assert_eq!((callee.calls, callee.ok, callee.busy), (2, 1, 1));
    }
}

/// Example (2) of `docs/runtime.md` over one module: four chains each hold one of its
/// four instances and call it again. One fails (a knot of 4), the other three are
/// served as instances come free.
#[test]
fn four_chains_holding_a_pool_of_four_fail_one() {
    for _ in 0..10 {
        let rt = Runtime::new(RuntimeConfig::default().max_wait(Duration::from_secs(60)));
        let hooks = Arc::new(Hooks::gated(4));
        rt.add("m", sharing(b"m", &hooks), ModuleSpec::pooled(4))
            .unwrap();
        let (outcomes, took) = crossing(&rt, &[("m", "m"); 4]);
        assert!(took < Duration::from_secs(10), "{took:?}");
        let failed: Vec<_> = outcomes.iter().filter_map(|o| o.clone().err()).collect();
        assert_eq!(failed.len(), 1, "{outcomes:?}");
        assert!(
            failed[0].contains("in a cycle of 4 call chains"),
            "{failed:?}"
        );
        let c = rt.module("m").unwrap().counters;
        // 4 calls from the host (one failed), 3 routed calls served, 1 deadlocked.
        assert_eq!((c.calls, c.ok, c.guest_errors, c.busy), (8, 6, 1, 1));
    }
}
