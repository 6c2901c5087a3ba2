//! The runtime over a fake executor: names, policies, swaps, removal and counters
//! without wasm (the real guests are exercised by `membrane-host`'s tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::TrapKind;
use crate::executor::{Canceller, GuestInstance, LimitOverrides};

/// A module whose instances answer `tag` with the module's tag, `count` with how many
/// calls the instance served, `trap` by trapping (and poisoning themselves) and
/// `fail` with a guest error.
struct FakeModule {
    tag: &'static [u8],
    made: Arc<AtomicUsize>,
    refuse_timeout: bool,
}

impl FakeModule {
    fn new(tag: &'static [u8]) -> FakeModule {
        FakeModule {
            tag,
            made: Arc::default(),
            refuse_timeout: false,
        }
    }
}

struct FakeInstantiator {
    tag: &'static [u8],
    made: Arc<AtomicUsize>,
}

struct FakeInstance {
    tag: &'static [u8],
    served: u8,
    poisoned: bool,
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

    fn limited(&self, overrides: &LimitOverrides) -> Result<Box<dyn Instantiator>> {
        if self.refuse_timeout && overrides.timeout.is_some() {
            return Err(ErrorKind::Config {
                reason: "no clock".into(),
            }
            .into());
        }
        Ok(Box::new(FakeInstantiator {
            tag: self.tag,
            made: self.made.clone(),
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
        }))
    }
}

impl GuestInstance for FakeInstance {
    fn call_envelope(
        &mut self,
        name: &str,
        _input: &[u8],
        read: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        self.served += 1;
        match name {
            "tag" => read(self.tag),
            "count" => read(&[self.served]),
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

    fn run_hook(&mut self, _hook: crate::executor::Hook) -> Result<()> {
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
        rt.add(name, module, spec).unwrap();
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
    let e = rt.add("m", module, spec).unwrap_err();
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
