//! Components written in WAT: described, called with values and WAVE, under limits.

use std::time::Duration;

use super::*;
use crate::EngineConfig;
use membrane_runtime::{LimitKind, TrapKind};

/// A component exporting `add`, `spin` (endless), `boom` (a trap), `deep` (endless
/// recursion), `grow` (past any memory limit), `echo` (a string), and the interface
/// `math` with `double`.
const COMPONENT: &str = r#"(component
  (core module $m
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "double") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2)))
    (func (export "spin") (loop $l (br $l)))
    (func (export "boom") unreachable)
    (func $deep (export "deep") (call $deep))
    (func (export "grow") (result i32)
      (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
      (i32.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (global.get $bump))
      (global.set $bump (i32.add (global.get $bump) (local.get 3)))
      (local.get $at))
    ;; echo(s: string) -> string: the result is the (ptr, len) pair at 0
    (func (export "echo") (param i32 i32) (result i32)
      (i32.store (i32.const 0) (local.get 0))
      (i32.store (i32.const 4) (local.get 1))
      (i32.const 0))
  )
  (core instance $i (instantiate $m))
  (func (export "add") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
  (func (export "spin") (canon lift (core func $i "spin")))
  (func (export "boom") (canon lift (core func $i "boom")))
  (func (export "deep") (canon lift (core func $i "deep")))
  (func (export "grow") (result u32) (canon lift (core func $i "grow")))
  (func (export "echo") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $i "mem") (realloc (func $i "realloc"))))
  (func $double (param "x" s64) (result s64) (canon lift (core func $i "double")))
  (instance $math (export "double" (func $double)))
  (export "math" (instance $math))
)"#;

fn engine(config: EngineConfig) -> Engine {
    Engine::new(config).unwrap()
}

fn component(engine: &Engine) -> Component {
    engine
        .load_component(&wat::parse_str(COMPONENT).unwrap())
        .unwrap()
}

#[test]
fn describes_every_function_with_its_parameters_including_interfaces() {
    let engine = engine(EngineConfig::default());
    let component = component(&engine);
    let signatures: Vec<String> = component
        .functions()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        signatures,
        [
            "add: func(a: u32, b: u32) -> u32",
            "boom: func()",
            "deep: func()",
            "echo: func(s: string) -> string",
            "grow: func() -> u32",
            "math#double: func(x: s64) -> s64",
            "spin: func()",
        ]
    );
    assert!(component.imports().is_empty());
    let wit = component.wit().unwrap();
    assert!(wit.starts_with("package root:component;\n"), "{wit}");
    assert!(
        wit.contains("  export add: func(a: u32, b: u32) -> u32;\n"),
        "{wit}"
    );
    assert!(
        wit.contains("  export math: interface {\n    double: func(x: s64) -> s64;\n  }\n"),
        "{wit}"
    );
    parses_as_wit(&wit);
}

/// Asserts that `wit` is WIT wit-parser accepts.
fn parses_as_wit(wit: &str) {
    let mut resolve = wit_parser::Resolve::default();
    if let Err(e) = resolve.push_str("component.wit", wit) {
        panic!("not WIT: {e:#}\n{wit}");
    }
}

#[test]
fn the_wit_keeps_the_names_of_types_and_interfaces() {
    let engine = engine(EngineConfig::default());
    let wasm = wat::parse_str(
        r#"(component
  (import "demo:geo/host@1.0.0" (instance
    (type $shape (enum "circle" "square"))
    (export "shape" (type $s (eq $shape)))
    (export "show" (func (param "s" $s)))))
  (core module $m
    (memory (export "mem") 1)
    (func (export "flip") (param i32 i32) (result i32) (local.get 1)))
  (core instance $i (instantiate $m))
  (func (export "flip") (param "x" s32) (param "y" s32) (result s32)
    (canon lift (core func $i "flip")))
)"#,
    )
    .unwrap();
    let component = engine.load_component(&wasm).unwrap();
    let wit = component.wit().unwrap();
    for line in [
        "  import demo:geo/host@1.0.0;\n",
        "package demo:geo@1.0.0 {\n",
        "enum shape {",
        "show: func(s: shape);",
        "export flip: func(x: s32, y: s32) -> s32;",
    ] {
        assert!(wit.contains(line), "{line:?} not in\n{wit}");
    }
    parses_as_wit(&wit);
}

#[test]
fn what_wit_cannot_describe_is_a_clear_error() {
    // A type exported at world level, outside any interface.
    let engine = engine(EngineConfig::default());
    let wasm = wat::parse_str(
        r#"(component
  (type $point (record (field "x" s32) (field "y" s32)))
  (export "point" (type $point)))"#,
    )
    .unwrap();
    let e = engine.load_component(&wasm).unwrap().wit().unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot describe the component in WIT"),
        "{e}"
    );
}

#[test]
fn calls_with_values_and_with_wave() {
    let engine = engine(EngineConfig::default());
    let mut instance = component(&engine).instantiate().unwrap();
    assert_eq!(
        instance.call("add", &[Val::U32(2), Val::U32(3)]).unwrap(),
        [Val::U32(5)]
    );
    assert_eq!(instance.call_wave("add(40, 2)").unwrap(), "42");
    assert_eq!(instance.call_wave("math#double(-21)").unwrap(), "-42");
    assert_eq!(
        instance.call_wave(r#"echo("héllo, \"wave\"")"#).unwrap(),
        r#""héllo, \"wave\"""#
    );
    assert_eq!(instance.call_wave("grow()").unwrap(), "0");
}

#[test]
fn typed_calls_check_their_types_and_run_under_the_limits() {
    let engine = engine(EngineConfig::default().fuel(Some(1_000_000)));
    let mut instance = component(&engine).instantiate().unwrap();
    let (sum,): (u32,) = instance.call_typed("add", (20u32, 22u32)).unwrap();
    assert_eq!(sum, 42);
    let (text,): (String,) = instance.call_typed("echo", ("ünïcode",)).unwrap();
    assert_eq!(text, "ünïcode");
    let (twice,): (i64,) = instance.call_typed("math#double", (-4i64,)).unwrap();
    assert_eq!(twice, -8);
    let e = instance
        .call_typed::<(u64, u64), (u32,)>("add", (1, 2))
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
        "{e}"
    );
    assert!(!instance.is_poisoned());
    let e = instance.call_typed::<(), ()>("spin", ()).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::OutOfFuel)),
        "{e}"
    );
    assert!(instance.is_poisoned());
}

#[test]
fn bad_arguments_name_the_parameter_and_run_nothing() {
    let engine = engine(EngineConfig::default());
    let mut instance = component(&engine).instantiate().unwrap();
    let reason = |e: Error| match e.kind() {
        ErrorKind::InvalidArguments { function, reason } => format!("{function}: {reason}"),
        other => panic!("{other:?}"),
    };
    let e = instance.call("add", &[Val::U32(1)]).unwrap_err();
    assert_eq!(reason(e), "add: expected 2 argument(s), got 1");
    let e = instance
        .call("add", &[Val::U32(1), Val::String("x".into())])
        .unwrap_err();
    assert_eq!(
        reason(e),
        r#"add: parameter `b` has type u32: got string "x""#
    );
    let e = instance
        .call("add", &[Val::U32(1), Val::S32(2)])
        .unwrap_err();
    assert_eq!(reason(e), "add: parameter `b` has type u32: got s32 2");
    assert!(!instance.is_poisoned());
    let e = instance.call_wave("add(1, \"x\")").unwrap_err();
    assert!(reason(e).starts_with("add: "));
    let e = instance.call_wave("add(1").unwrap_err();
    assert!(reason(e).contains("not a WAVE function call"));
    let e = instance.call_wave("nope(1)").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownFunction { name } if name == "nope"));
    let e = instance.call("math#nope", &[]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownFunction { .. }));
    assert!(!instance.is_poisoned());
    assert_eq!(instance.call_wave("add(1, 1)").unwrap(), "2");
}

#[test]
fn traps_and_limits_map_to_their_kinds_and_poison() {
    let engine = engine(EngineConfig::default().fuel(Some(1_000_000)));
    let mut instance = component(&engine).instantiate().unwrap();
    let e = instance.call("spin", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::OutOfFuel)),
        "{e}"
    );
    assert!(instance.is_poisoned());
    let e = instance
        .call("add", &[Val::U32(1), Val::U32(1)])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Poisoned { .. }), "{e}");

    let mut instance = component(&engine).instantiate().unwrap();
    let e = instance.call("boom", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::Unreachable)),
        "{e}"
    );

    // 1000 pages are past a 16 MiB memory limit: refused, then `unreachable`.
    let engine = crate::Engine::new(EngineConfig::default().max_memory(16 << 20)).unwrap();
    let mut instance = component(&engine).instantiate().unwrap();
    let e = instance.call("grow", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Limit(LimitKind::Memory { .. })),
        "{e}"
    );
}

#[test]
fn a_timeout_stops_an_endless_call() {
    let timeout = Duration::from_millis(50);
    let engine = engine(EngineConfig::default().fuel(None).timeout(Some(timeout)));
    let mut instance = component(&engine).instantiate().unwrap();
    let started = std::time::Instant::now();
    let e = instance.call("spin", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::Timeout)),
        "{e}"
    );
    assert!(started.elapsed() < timeout * 100, "{:?}", started.elapsed());
}

#[test]
fn a_cancel_handle_stops_a_call_from_another_thread() {
    let engine = engine(EngineConfig::default().fuel(None).timeout(None));
    let mut instance = component(&engine).instantiate().unwrap();
    let cancel = instance.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        cancel.cancel();
    });
    let e = instance.call("spin", &[]).unwrap_err();
    canceller.join().unwrap();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::Cancelled)),
        "{e}"
    );
    assert!(instance.is_poisoned());
}

#[test]
fn imports_and_non_components_are_refused_clearly() {
    let engine = engine(EngineConfig::default());
    let wasm = wat::parse_str(
        r#"(component
  (import "host-log" (func $log (param "msg" string)))
)"#,
    )
    .unwrap();
    let component = engine.load_component(&wasm).unwrap();
    assert_eq!(component.imports(), ["host-log"]);
    let wit = component.wit().unwrap();
    assert!(
        wit.contains("  import host-log: func(msg: string);\n"),
        "{wit}"
    );
    let e = component.instantiate().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::MissingImports { imports } if imports == &["host-log"]),
        "{e}"
    );
    let core = wat::parse_str("(module)").unwrap();
    let e = engine.load_component(&core).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidModule { .. }), "{e}");
}

/// Hostile components: a list result whose length runs past memory, a post-return
/// function that traps. Each fails with an error, never a crash, and poisons.
#[test]
fn hostile_results_and_post_returns_fail_cleanly() {
    let engine = engine(EngineConfig::default());
    let wasm = wat::parse_str(
        r#"(component
  (core module $m
    (memory (export "mem") 1)
    (func (export "huge") (result i32)
      (i32.store (i32.const 0) (i32.const 16))
      (i32.store (i32.const 4) (i32.const 0x7fffffff))
      (i32.const 0))
    (func (export "value") (result i32) (i32.const 7))
    (func (export "post") (param i32) unreachable))
  (core instance $i (instantiate $m))
  (func (export "huge") (result (list u8)) (canon lift (core func $i "huge") (memory $i "mem")))
  (func (export "value") (result u32)
    (canon lift (core func $i "value") (post-return (func $i "post")))))"#,
    )
    .unwrap();
    let component = engine.load_component(&wasm).unwrap();
    let mut instance = component.instantiate().unwrap();
    let e = instance.call("huge", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Host { message } if message.contains("out of bounds")),
        "{e:?}"
    );
    assert!(instance.is_poisoned());
    let mut instance = component.instantiate().unwrap();
    let e = instance.call("value", &[]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Trap(TrapKind::Unreachable)),
        "{e:?}"
    );
    assert!(instance.is_poisoned());
}

/// `add(2, 3)` on a new instance of `component`.
fn adds(component: &Component) -> String {
    component
        .instantiate()
        .unwrap()
        .call_wave("add(2, 3)")
        .unwrap()
}

#[test]
fn components_share_the_compiled_artifact_cache_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str(COMPONENT).unwrap();
    let config = || EngineConfig::default().cache_dir(Some(dir.path().to_path_buf()));

    let first = engine(config());
    first.load_component(&wasm).unwrap();
    let again = first.load_component(&wasm).unwrap();
    let stats = first.cache_stats();
    assert_eq!(
        (stats.misses, stats.memory_hits, stats.disk_writes),
        (1, 1, 1)
    );
    assert_eq!(stats.memory_entries, 1);
    assert_eq!(adds(&again), "5");

    // Another engine (another process, as far as the cache knows) reads the file.
    let second = engine(config());
    let loaded = second.load_component(&wasm).unwrap();
    let stats = second.cache_stats();
    assert_eq!((stats.misses, stats.disk_hits), (0, 1));
    assert_eq!(adds(&loaded), "5");

    // A damaged file is refused before deserializing, recompiled and replaced.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&files[0], &bytes).unwrap();
    let third = engine(config());
    let loaded = third.load_component(&wasm).unwrap();
    let stats = third.cache_stats();
    assert_eq!(
        (stats.disk_rejects, stats.misses, stats.disk_writes),
        (1, 1, 1)
    );
    assert_eq!(adds(&loaded), "5");
}

#[test]
fn a_component_and_a_module_never_share_a_key() {
    // The same bytes asked for as either kind: refused as a component, loaded as a
    // module, each compiled on its own (the component's failure is not cached).
    let engine = engine(EngineConfig::default());
    let module = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "__membrane_abi_v1"))
           (func (export "__membrane_alloc") (param i32 i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let refused = engine.load_component(&module).unwrap_err();
    assert!(
        matches!(refused.kind(), ErrorKind::InvalidModule { .. }),
        "{refused}"
    );
    engine.load(&module).unwrap();
    assert_eq!(engine.cache_stats().misses, 2);
    let component = wat::parse_str(COMPONENT).unwrap();
    assert!(matches!(
        engine.load(&component).unwrap_err().kind(),
        ErrorKind::InvalidModule { .. }
    ));
}

#[test]
fn precompiling_a_component_writes_its_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(EngineConfig::default().cache_dir(Some(dir.path().to_path_buf())));
    let path = engine
        .precompile_component(&wat::parse_str(COMPONENT).unwrap())
        .unwrap()
        .expect("a cache_dir is set");
    assert!(path.starts_with(dir.path()) && path.exists());
    let without = self::engine(EngineConfig::default());
    assert_eq!(
        without
            .precompile_component(&wat::parse_str(COMPONENT).unwrap())
            .unwrap(),
        None
    );
}

#[test]
fn values_are_checked_by_structure_and_flags_in_any_order() {
    let engine = engine(EngineConfig::default());
    let wasm = wat::parse_str(
        r#"(component
  (core module $m
    (func (export "id") (param i32) (result i32) (local.get 0)))
  (core instance $i (instantiate $m))
  (type $perm (flags "read" "write" "exec"))
  (export $p "perm" (type $perm))
  (func (export "same") (param "p" $p) (result $p) (canon lift (core func $i "id")))
)"#,
    )
    .unwrap();
    let mut instance = engine.load_component(&wasm).unwrap().instantiate().unwrap();
    let flags = |names: &[&str]| Val::Flags(names.iter().map(|n| n.to_string()).collect());
    // The type's order (not alphabetical), and a value the call itself returned.
    let out = instance.call("same", &[flags(&["write", "exec"])]).unwrap();
    let again = instance.call("same", &out).unwrap();
    assert_eq!(out, again);
    assert_eq!(
        instance.call_wave("same({exec, read})").unwrap(),
        "{read, exec}"
    );
    let e = instance.call("same", &[flags(&["fly"])]).unwrap_err();
    assert!(
        e.to_string()
            .contains("parameter `p` has type flags { read, write, exec }: no flag `fly`"),
        "{e}"
    );
}

#[test]
fn resources_are_refused_clearly() {
    let engine = engine(EngineConfig::default());
    let wasm = wat::parse_str(
        r#"(component
  (type $r (resource (rep i32)))
  (core func $new (canon resource.new $r))
  (core module $m
    (import "" "new" (func $new (param i32) (result i32)))
    (func (export "make") (result i32) (call $new (i32.const 7)))
    (func (export "take") (param i32)))
  (core instance $i (instantiate $m (with "" (instance (export "new" (func $new))))))
  (export $R "r" (type $r))
  (func (export "make") (result (own $R)) (canon lift (core func $i "make")))
  (func (export "take") (param "x" (own $R)) (canon lift (core func $i "take")))
)"#,
    )
    .unwrap();
    let component = engine.load_component(&wasm).unwrap();
    let mut instance = component.instantiate().unwrap();
    let e = instance.call("make", &[]).unwrap_err();
    assert!(e.to_string().contains("resources are not supported"), "{e}");
    let e = instance.call_wave("take(1)").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
        "{e}"
    );
    assert!(!instance.is_poisoned());
}
