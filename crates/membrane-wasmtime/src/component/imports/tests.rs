//! Host functions for components written in WAT: typed and dynamic, at world level and
//! inside an interface; failing and panicking ones; imports left missing or mistyped.

use std::sync::{Arc, Mutex};

use membrane_runtime::{AbiViolation, ErrorKind, TrapKind};

use crate::component::{Component, ComponentImports, Val};
use crate::{Engine, EngineConfig};

/// Imports the interface `demo:host/log` (`write: func(msg: string)`, `flush: func()`)
/// and the world-level `add: func(a: u32, b: u32) -> u32`; exports `run` (writes "hi",
/// then flushes), `sum` (calls `add`) and `spin`.
const COMPONENT: &str = r#"(component
  (import "demo:host/log" (instance $log
    (export "write" (func (param "msg" string)))
    (export "flush" (func))))
  (import "add" (func $add (param "a" u32) (param "b" u32) (result u32)))
  (core module $mem (memory (export "mem") 1) (data (i32.const 16) "hi"))
  (core instance $mem (instantiate $mem))
  (core func $write (canon lower (func $log "write") (memory $mem "mem")))
  (core func $flush (canon lower (func $log "flush")))
  (core func $add_core (canon lower (func $add)))
  (core module $m
    (import "host" "write" (func $write (param i32 i32)))
    (import "host" "flush" (func $flush))
    (import "host" "add" (func $add (param i32 i32) (result i32)))
    (func (export "run") (call $write (i32.const 16) (i32.const 2)) (call $flush))
    (func (export "sum") (param i32 i32) (result i32) (call $add (local.get 0) (local.get 1)))
    (func (export "spin") (loop $l (br $l))))
  (core instance $i (instantiate $m
    (with "host" (instance
      (export "write" (func $write))
      (export "flush" (func $flush))
      (export "add" (func $add_core))))))
  (func (export "run") (canon lift (core func $i "run")))
  (func (export "sum") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "sum")))
  (func (export "spin") (canon lift (core func $i "spin")))
)"#;

fn component(config: EngineConfig) -> Component {
    let engine = Engine::new(config).unwrap();
    engine
        .load_component(&wat::parse_str(COMPONENT).unwrap())
        .unwrap()
}

/// `demo:host/log` typed (recording into `lines`), `add` dynamic.
fn imports(lines: &Arc<Mutex<Vec<String>>>) -> ComponentImports {
    let mut imports = ComponentImports::new();
    let seen = lines.clone();
    imports
        .name("tested")
        .func("demo:host/log#write", move |ctx, (msg,): (String,)| {
            seen.lock()
                .unwrap()
                .push(format!("{} {}: {msg}", ctx.instance_name(), ctx.function()));
            Ok(())
        });
    let seen = lines.clone();
    imports.func("demo:host/log#flush", move |_ctx, (): ()| {
        seen.lock().unwrap().push("flush".into());
        Ok(())
    });
    imports.func_new("add", |_ctx, args, results| {
        let (Val::U32(a), Val::U32(b)) = (&args[0], &args[1]) else {
            return Err("add takes two u32".into());
        };
        results[0] = Val::U32(a.checked_add(*b).ok_or("overflow")?);
        Ok(())
    });
    imports
}

#[test]
fn typed_and_dynamic_host_functions_serve_interface_and_world_imports() {
    let component = component(EngineConfig::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut instance = component.instantiate_with(&imports(&lines)).unwrap();
    assert_eq!(instance.name(), "tested");
    instance.call("run", &[]).unwrap();
    assert_eq!(
        *lines.lock().unwrap(),
        ["tested demo:host/log#write: hi", "flush"]
    );
    assert_eq!(instance.call_wave("sum(40, 2)").unwrap(), "42");
    let (sum,): (u32,) = instance.call_typed("sum", (1u32, 2u32)).unwrap();
    assert_eq!(sum, 3);
    assert!(!instance.is_poisoned());
}

#[test]
fn a_host_function_that_fails_fails_the_call_and_poisons() {
    let component = component(EngineConfig::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut instance = component.instantiate_with(&imports(&lines)).unwrap();
    let e = instance.call_wave("sum(4294967295, 1)").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Host { message }
            if message == "host function `add` failed: overflow"),
        "{e:?}"
    );
    assert!(instance.is_poisoned());
    let e = instance.call_wave("sum(1, 1)").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Poisoned { .. }), "{e:?}");
}

#[test]
fn a_host_function_that_panics_fails_the_call_and_poisons() {
    let component = component(EngineConfig::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut imports = imports(&lines);
    imports.func("demo:host/log#flush", |_ctx, (): ()| -> Result<(), _> {
        panic!("flush broke")
    });
    let mut instance = component.instantiate_with(&imports).unwrap();
    let e = instance.call("run", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Host { message }
            if message == "host function `demo:host/log#flush` panicked: flush broke"),
        "{e:?}"
    );
    assert!(instance.is_poisoned());
    // The host goes on: a new instance works.
    let mut imports = self::imports(&lines);
    imports.name("again");
    let mut instance = component.instantiate_with(&imports).unwrap();
    assert_eq!(instance.call_wave("sum(1, 1)").unwrap(), "2");
}

#[test]
fn limits_apply_to_components_with_imports() {
    let component = component(EngineConfig::default().fuel(Some(100_000)));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut instance = component.instantiate_with(&imports(&lines)).unwrap();
    let e = instance.call("spin", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::OutOfFuel)),
        "{e:?}"
    );
}

#[test]
fn every_missing_import_is_named() {
    let component = component(EngineConfig::default());
    let missing = |imports: &ComponentImports| match component.instantiate_with(imports) {
        Err(e) => match e.kind() {
            ErrorKind::MissingImports { imports } => imports.clone(),
            other => panic!("{other:?}"),
        },
        Ok(_) => panic!("instantiated"),
    };
    assert_eq!(missing(&ComponentImports::new()), ["demo:host/log", "add"]);
    let mut partly = ComponentImports::new();
    partly.func("demo:host/log#write", |_, (_msg,): (String,)| Ok(()));
    assert_eq!(missing(&partly), ["demo:host/log#flush", "add"]);
    // A function of the same name in another interface, or at world level, is not it.
    let mut elsewhere = ComponentImports::new();
    elsewhere
        .func("write", |_, (_msg,): (String,)| Ok(()))
        .func("demo:other/log#flush", |_, (): ()| Ok(()))
        .func("demo:host/log#add", |_, (a, b): (u32, u32)| Ok((a + b,)));
    assert_eq!(
        missing(&elsewhere),
        ["demo:host/log#write", "demo:host/log#flush", "add"]
    );
    assert_eq!(
        elsewhere.names().collect::<Vec<_>>(),
        ["write", "demo:host/log#add", "demo:other/log#flush"]
    );
}

#[test]
fn a_host_function_of_the_wrong_type_is_refused() {
    let component = component(EngineConfig::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut imports = imports(&lines);
    imports.func("add", |_, (a,): (u64,)| Ok((a,)));
    let e = component.instantiate_with(&imports).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Abi(AbiViolation::WrongImportType { found, .. })
            if found.contains("add")),
        "{e:?}"
    );
}
