//! Components built from Rust with wit-bindgen and componentized by `cargo xtask
//! build-guests`: `kitchen` (every WIT value type) described and called with values,
//! WAVE and typed calls; `hostile-component` and `missing-import` under the limits.

use std::time::{Duration, Instant};

use membrane_host::component::{Component, ComponentInstance, Val};
use membrane_host::{Engine, EngineConfig, Error, ErrorKind, LimitKind, TrapKind};

use crate::support::{engine, guest_bytes};

/// The interface of `kitchen.wit` that holds the named and compound types.
const TYPES: &str = "demo:kitchen/types";

/// The WIT file the kitchen guest is built from.
const KITCHEN_WIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../guest-examples/kitchen/wit/kitchen.wit"
);

fn component_on(engine: &Engine, name: &str) -> Component {
    engine
        .load_component(&guest_bytes(name))
        .unwrap_or_else(|e| panic!("the {name} component loads: {e}"))
}

fn kitchen() -> ComponentInstance {
    component_on(engine(), "kitchen").instantiate().unwrap()
}

fn hostile(config: EngineConfig) -> ComponentInstance {
    let engine = Engine::new(config).unwrap();
    component_on(&engine, "hostile-component")
        .instantiate()
        .unwrap()
}

/// `name` of the `types` interface.
fn types(name: &str) -> String {
    format!("{TYPES}#{name}")
}

mod introspection {
    //! `Component::functions()` against the functions of the WIT file.

    use super::*;
    use wit_parser::{Resolve, Type, TypeDefKind, WorldItem};

    /// A WIT type written as `ComponentFunction`'s `Display` writes one: named types
    /// by their structure.
    fn text(resolve: &Resolve, ty: &Type) -> String {
        let id = match ty {
            Type::Bool => return "bool".into(),
            Type::U8 => return "u8".into(),
            Type::U16 => return "u16".into(),
            Type::U32 => return "u32".into(),
            Type::U64 => return "u64".into(),
            Type::S8 => return "s8".into(),
            Type::S16 => return "s16".into(),
            Type::S32 => return "s32".into(),
            Type::S64 => return "s64".into(),
            Type::F32 => return "f32".into(),
            Type::F64 => return "f64".into(),
            Type::Char => return "char".into(),
            Type::String => return "string".into(),
            Type::ErrorContext => return "error-context".into(),
            Type::Id(id) => *id,
        };
        let join = |items: Vec<String>| items.join(", ");
        match &resolve.types[id].kind {
            TypeDefKind::Record(r) => format!(
                "record {{ {} }}",
                join(
                    r.fields
                        .iter()
                        .map(|f| format!("{}: {}", f.name, text(resolve, &f.ty)))
                        .collect()
                )
            ),
            TypeDefKind::Variant(v) => format!(
                "variant {{ {} }}",
                join(
                    v.cases
                        .iter()
                        .map(|c| match &c.ty {
                            Some(ty) => format!("{}({})", c.name, text(resolve, ty)),
                            None => c.name.clone(),
                        })
                        .collect()
                )
            ),
            TypeDefKind::Enum(e) => format!(
                "enum {{ {} }}",
                join(e.cases.iter().map(|c| c.name.clone()).collect())
            ),
            TypeDefKind::Flags(f) => format!(
                "flags {{ {} }}",
                join(f.flags.iter().map(|c| c.name.clone()).collect())
            ),
            TypeDefKind::Tuple(t) => format!(
                "tuple<{}>",
                join(t.types.iter().map(|ty| text(resolve, ty)).collect())
            ),
            TypeDefKind::Option(ty) => format!("option<{}>", text(resolve, ty)),
            TypeDefKind::List(ty) => format!("list<{}>", text(resolve, ty)),
            TypeDefKind::Result(r) => match (&r.ok, &r.err) {
                (None, None) => "result".into(),
                (Some(ok), None) => format!("result<{}>", text(resolve, ok)),
                (None, Some(err)) => format!("result<_, {}>", text(resolve, err)),
                (Some(ok), Some(err)) => {
                    format!("result<{}, {}>", text(resolve, ok), text(resolve, err))
                }
            },
            TypeDefKind::Type(ty) => text(resolve, ty),
            other => panic!("kitchen.wit has no {other:?}"),
        }
    }

    /// The signatures of the functions a world exports, as `Component::functions()`
    /// names and writes them (`interface#function` inside an interface), sorted.
    fn exported_signatures(path: &str, world: &str) -> Vec<String> {
        let mut resolve = Resolve::default();
        let package = resolve.push_file(path).unwrap();
        let world = resolve.select_world(&[package], Some(world)).unwrap();
        signatures_of(&resolve, world)
    }

    /// The signatures of the functions `world` of `resolve` exports (see
    /// [`exported_signatures`]).
    fn signatures_of(resolve: &Resolve, world: wit_parser::WorldId) -> Vec<String> {
        let signature = |name: String, f: &wit_parser::Function| {
            let params: Vec<String> = f
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, text(resolve, &p.ty)))
                .collect();
            let result = f
                .result
                .as_ref()
                .map(|ty| format!(" -> {}", text(resolve, ty)))
                .unwrap_or_default();
            format!("{name}: func({}){result}", params.join(", "))
        };
        let mut out = Vec::new();
        for (key, item) in &resolve.worlds[world].exports {
            match item {
                WorldItem::Function(f) => out.push(signature(f.name.clone(), f)),
                WorldItem::Interface { id, .. } => {
                    let interface = resolve.name_world_key(key);
                    for (name, f) in &resolve.interfaces[*id].functions {
                        out.push(signature(format!("{interface}#{name}"), f));
                    }
                }
                WorldItem::Type { .. } => {}
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_kitchen_component_describes_the_functions_of_its_wit() {
        let component = component_on(engine(), "kitchen");
        let functions = component.functions();
        let described: Vec<String> = functions.iter().map(ToString::to_string).collect();
        let expected = exported_signatures(KITCHEN_WIT, "kitchen");
        assert_eq!(described, expected);
        // Spot checks that do not go through the WIT: the interface's name, parameter
        // names and count.
        let describe = functions
            .iter()
            .find(|f| f.name == types("describe"))
            .unwrap();
        let names: Vec<&str> = describe.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["at", "hue", "label"]);
        let nothing = functions.iter().find(|f| f.name == "nothing").unwrap();
        assert!(nothing.params.is_empty() && nothing.result.is_none());
        assert!(component.imports().is_empty(), "{:?}", component.imports());
    }

    /// The names of the types an interface named `name` defines in `resolve`.
    fn type_names(resolve: &Resolve, name: &str) -> Vec<String> {
        let (_, interface) = resolve
            .interfaces
            .iter()
            .find(|(_, i)| i.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no interface {name}"));
        let mut names: Vec<String> = interface.types.keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn the_kitchen_component_wit_is_the_wit_it_was_built_from() {
        let wit = component_on(engine(), "kitchen").wit().unwrap();
        let mut decoded = Resolve::default();
        let package = decoded
            .push_str("kitchen-decoded.wit", &wit)
            .unwrap_or_else(|e| panic!("not WIT: {e:#}\n{wit}"));
        let world = decoded.select_world(&[package], Some("root")).unwrap();
        // Every exported function with its signature, and every named type of the
        // interface, by the names of the WIT file.
        assert_eq!(
            signatures_of(&decoded, world),
            exported_signatures(KITCHEN_WIT, "kitchen"),
            "{wit}"
        );
        let mut source = Resolve::default();
        source.push_file(KITCHEN_WIT).unwrap();
        assert_eq!(type_names(&decoded, "types"), type_names(&source, "types"));
        assert!(wit.contains("package demo:kitchen"), "{wit}");
        assert!(wit.contains("record point {"), "{wit}");
    }

    #[test]
    fn the_hostile_component_describes_its_functions() {
        let component = component_on(engine(), "hostile-component");
        let described: Vec<String> = component
            .functions()
            .iter()
            .map(ToString::to_string)
            .collect();
        let wit = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../guest-examples/hostile-component/wit/hostile.wit"
        );
        assert_eq!(described, exported_signatures(wit, "hostile"));
    }
}

mod wave {
    //! Every type through `call_wave`: WAVE text in, WAVE text out.

    use super::*;

    /// Calls `call` (WAVE) on `instance` and compares the result's WAVE text.
    fn check(instance: &mut ComponentInstance, call: &str, expected: &str) {
        let got = instance
            .call_wave(call)
            .unwrap_or_else(|e| panic!("{call}: {e}"));
        assert_eq!(got, expected, "{call}");
    }

    /// `echo(value)` answers `value` as written.
    fn echo(instance: &mut ComponentInstance, function: &str, value: &str) {
        check(instance, &format!("{function}({value})"), value);
    }

    #[test]
    fn scalars_at_world_level() {
        let mut k = kitchen();
        for (function, values) in [
            ("echo-bool", &["true", "false"][..]),
            ("echo-s8", &["-128", "0", "127"]),
            ("echo-s16", &["-32768", "32767"]),
            ("echo-s32", &["-2147483648", "2147483647"]),
            ("echo-s64", &["-9223372036854775808", "9223372036854775807"]),
            ("echo-u8", &["0", "255"]),
            ("echo-u16", &["0", "65535"]),
            ("echo-u32", &["0", "4294967295"]),
            ("echo-u64", &["0", "18446744073709551615"]),
            ("echo-f32", &["0", "-0", "1.5", "nan", "inf", "-inf"]),
            ("echo-f64", &["-2.5", "nan", "inf", "-inf"]),
            ("echo-char", &["'a'", "'é'", "'😀'", "'\\''", "'\\n'"]),
            (
                "echo-string",
                &["\"\"", "\"héllo, wörld 😀\"", r#""\"quoted\"\n\ttab""#],
            ),
            ("echo-bytes", &["[]", "[0, 1, 255]"]),
        ] {
            for value in values {
                echo(&mut k, function, value);
            }
        }
        // WAVE reads floats in any form and writes them as Rust's `Display` does.
        for (call, expected) in [
            ("echo-f32(3.4028235e38)", f32::MAX.to_string()),
            ("echo-f32(-1e-45)", (-f32::from_bits(1)).to_string()),
            ("echo-f64(1.7976931348623157e308)", f64::MAX.to_string()),
            ("echo-f64(5e-324)", f64::from_bits(1).to_string()),
            ("echo-f64(1.0)", "1".to_string()),
        ] {
            check(&mut k, call, &expected);
        }
        // A char outside the printable range is written escaped.
        check(&mut k, r"echo-char('\u{10ffff}')", r"'\u{10ffff}'");
        check(&mut k, "add(1, 2)", "3");
        check(&mut k, "add(4294967295, 1)", "0");
        check(&mut k, "nothing()", "");
        check(
            &mut k,
            r#"double-order({id: 18446744073709551615, qty: 21, price: 2.5, sku: "ab-ü"})"#,
            r#"{id: 18446744073709551615, qty: 42, price: 2.5, sku: "AB-Ü"}"#,
        );
    }

    #[test]
    fn compound_and_named_types_in_an_interface() {
        let mut k = kitchen();
        for (function, values) in [
            ("echo-point", &["{x: -2147483648, y: 2147483647}"][..]),
            ("echo-color", &["red", "green", "blue"]),
            (
                "echo-perms",
                &["{}", "{read}", "{write, exec}", "{read, write, exec}"],
            ),
            (
                "echo-shape",
                &[
                    "circle(1.5)",
                    "rect({x: 1, y: -1})",
                    "labelled(\"ü\")",
                    "empty",
                ],
            ),
            ("echo-tuple", &["(0, \"\", 0)", "(255, \"x\", -inf)"]),
            ("echo-list", &["[]", "[-1, 0, 2147483647]"]),
            ("echo-strings", &["[]", "[\"\", \"a\", \"ü😀\"]"]),
            ("echo-points", &["[]", "[{x: 1, y: 2}, {x: -3, y: 4}]"]),
            ("echo-option", &["none", "some(\"\")", "some(\"x\")"]),
            ("echo-result", &["ok(0)", "ok(4294967295)", "err(\"bad\")"]),
            ("echo-unit-result", &["ok", "err"]),
            (
                "echo-nested",
                &[
                    "none",
                    "some(ok(none))",
                    "some(ok(some(7)))",
                    "some(err([]))",
                    "some(err([none, some(\"x\")]))",
                ],
            ),
            (
                "echo-everything",
                &[
                    r#"{flag: true, small: -128, big: 18446744073709551615, ratio: nan, letter: '😀', name: "ö", bytes: [1, 2], pair: (65535, -32768), at: {x: 1, y: 2}, hue: blue, access: {read, exec}, outline: rect({x: 0, y: 0}), maybe: some(4294967295), outcome: err(-9223372036854775808)}"#,
                ],
            ),
        ] {
            for value in values {
                echo(&mut k, &types(function), value);
            }
        }
        // A record's `none` fields may be left out, and are written so.
        let bare = r#"{flag: false, small: 0, big: 0, ratio: -0, letter: 'a', name: "", bytes: [], pair: (0, 0), at: {x: 0, y: 0}, hue: red, access: {}, outline: empty, outcome: ok("")}"#;
        echo(&mut k, &types("echo-everything"), bare);
        check(
            &mut k,
            &format!(
                "{}({})",
                types("echo-everything"),
                bare.replace("outline", "maybe: none, outline")
            ),
            bare,
        );
        // Flags in any order, written in the type's order.
        check(
            &mut k,
            &format!("{}({{exec, read}})", types("echo-perms")),
            "{read, exec}",
        );
        check(
            &mut k,
            &format!("{}({{x: 1, y: 2}}, blue, none)", types("describe")),
            "\"unlabelled at (1, 2) in Color::Blue\"",
        );
        check(
            &mut k,
            &format!(
                "{}({{x: -1, y: 0}}, red, some(\"here\"))",
                types("describe")
            ),
            "\"here at (-1, 0) in Color::Red\"",
        );
    }
}

mod values {
    //! Every type through `call` with `Val`s built by hand.

    use super::*;

    fn record(fields: &[(&str, Val)]) -> Val {
        Val::Record(
            fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        )
    }

    fn point(x: i32, y: i32) -> Val {
        record(&[("x", Val::S32(x)), ("y", Val::S32(y))])
    }

    fn some(v: Val) -> Val {
        Val::Option(Some(Box::new(v)))
    }

    fn string(s: &str) -> Val {
        Val::String(s.into())
    }

    /// Calls `function` with `args` and checks its one result is `expected` (compared
    /// by their `Debug`, so a NaN equals a NaN).
    fn check(instance: &mut ComponentInstance, function: &str, args: &[Val], expected: Val) {
        let got = instance
            .call(function, args)
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert_eq!(
            format!("{got:?}"),
            format!("{:?}", [expected]),
            "{function}"
        );
    }

    fn echo(instance: &mut ComponentInstance, function: &str, value: Val) {
        check(
            instance,
            function,
            std::slice::from_ref(&value),
            value.clone(),
        );
    }

    #[test]
    fn every_type_round_trips() {
        let mut k = kitchen();
        for (function, value) in [
            ("echo-bool", Val::Bool(true)),
            ("echo-s8", Val::S8(i8::MIN)),
            ("echo-s16", Val::S16(i16::MAX)),
            ("echo-s32", Val::S32(i32::MIN)),
            ("echo-s64", Val::S64(i64::MAX)),
            ("echo-u8", Val::U8(u8::MAX)),
            ("echo-u16", Val::U16(u16::MAX)),
            ("echo-u32", Val::U32(u32::MAX)),
            ("echo-u64", Val::U64(u64::MAX)),
            ("echo-f32", Val::Float32(f32::NAN)),
            ("echo-f32", Val::Float32(f32::MIN_POSITIVE)),
            ("echo-f64", Val::Float64(f64::NEG_INFINITY)),
            ("echo-f64", Val::Float64(-0.0)),
            ("echo-char", Val::Char('\u{10ffff}')),
            ("echo-string", string("ünïcödé 😀")),
            ("echo-bytes", Val::List(vec![])),
            ("echo-bytes", Val::List((0..=255).map(Val::U8).collect())),
        ] {
            echo(&mut k, function, value);
        }
        for (function, value) in [
            ("echo-point", point(i32::MIN, i32::MAX)),
            ("echo-color", Val::Enum("green".into())),
            ("echo-perms", Val::Flags(vec![])),
            ("echo-perms", Val::Flags(vec!["write".into()])),
            (
                "echo-shape",
                Val::Variant("circle".into(), Some(Box::new(Val::Float64(0.5)))),
            ),
            (
                "echo-shape",
                Val::Variant("rect".into(), Some(Box::new(point(3, 4)))),
            ),
            (
                "echo-shape",
                Val::Variant("labelled".into(), Some(Box::new(string("l")))),
            ),
            ("echo-shape", Val::Variant("empty".into(), None)),
            (
                "echo-tuple",
                Val::Tuple(vec![Val::U8(7), string("t"), Val::Float64(f64::NAN)]),
            ),
            ("echo-list", Val::List(vec![Val::S32(-1), Val::S32(1)])),
            ("echo-strings", Val::List(vec![string(""), string("é")])),
            ("echo-points", Val::List(vec![point(1, 2), point(3, 4)])),
            ("echo-option", Val::Option(None)),
            ("echo-option", some(string("x"))),
            ("echo-result", Val::Result(Ok(Some(Box::new(Val::U32(1)))))),
            (
                "echo-result",
                Val::Result(Err(Some(Box::new(string("no"))))),
            ),
            ("echo-unit-result", Val::Result(Ok(None))),
            ("echo-unit-result", Val::Result(Err(None))),
            (
                "echo-nested",
                some(Val::Result(Ok(Some(Box::new(some(Val::U8(9))))))),
            ),
            (
                "echo-nested",
                some(Val::Result(Err(Some(Box::new(Val::List(vec![
                    Val::Option(None),
                    some(string("x")),
                ])))))),
            ),
        ] {
            echo(&mut k, &types(function), value);
        }
        let everything = record(&[
            ("flag", Val::Bool(true)),
            ("small", Val::S8(-1)),
            ("big", Val::U64(1 << 40)),
            ("ratio", Val::Float32(f32::INFINITY)),
            ("letter", Val::Char('ß')),
            ("name", string("all")),
            ("bytes", Val::List(vec![Val::U8(0)])),
            ("pair", Val::Tuple(vec![Val::U16(1), Val::S16(-1)])),
            ("at", point(5, 6)),
            ("hue", Val::Enum("blue".into())),
            ("access", Val::Flags(vec!["exec".into()])),
            ("outline", Val::Variant("empty".into(), None)),
            ("maybe", Val::Option(None)),
            ("outcome", Val::Result(Ok(Some(Box::new(string("ok")))))),
        ]);
        echo(&mut k, &types("echo-everything"), everything);
        check(&mut k, "add", &[Val::U32(40), Val::U32(2)], Val::U32(42));
        assert!(k.call("nothing", &[]).unwrap().is_empty());
        let order = |qty: u32, sku: &str| {
            record(&[
                ("id", Val::U64(9)),
                ("qty", Val::U32(qty)),
                ("price", Val::Float64(1.25)),
                ("sku", string(sku)),
            ])
        };
        check(&mut k, "double-order", &[order(2, "x-1")], order(4, "X-1"));
    }

    /// A result passed back as an argument: wasmtime lifts flags in the type's order,
    /// and `call`'s argument check takes flags in any order (it once compared WAVE
    /// text, which wasm-wave's parser sorts by name, and refused `{read, exec}`).
    #[test]
    fn flags_in_the_types_order_are_accepted() {
        let mut k = kitchen();
        let all = Val::Flags(vec!["read".into(), "write".into(), "exec".into()]);
        echo(&mut k, &types("echo-perms"), all);
        let back = k
            .call_wave(&format!("{}({{read, exec}})", types("echo-perms")))
            .unwrap();
        assert_eq!(back, "{read, exec}");
        let lifted = k
            .call(
                &types("echo-perms"),
                &[Val::Flags(vec!["exec".into(), "read".into()])],
            )
            .unwrap();
        k.call(&types("echo-perms"), &lifted).unwrap();
    }
}

mod arguments {
    //! Arguments that do not fit fail before the guest runs, naming the parameter.

    use super::*;

    fn reason(e: Error) -> String {
        match e.kind() {
            ErrorKind::InvalidArguments { function, reason } => format!("{function}: {reason}"),
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    /// `call` fails with invalid arguments whose text contains `expected`.
    fn check(function: &str, args: &[Val], expected: &str) {
        let mut k = kitchen();
        let e = reason(k.call(function, args).unwrap_err());
        assert!(e.contains(expected), "{function}: {e}");
        assert!(!k.is_poisoned());
    }

    /// `call_wave` fails with invalid arguments whose text contains `expected`.
    fn check_wave(call: &str, expected: &str) {
        let mut k = kitchen();
        let e = reason(k.call_wave(call).unwrap_err());
        assert!(e.contains(expected), "{call}: {e}");
        assert!(!k.is_poisoned());
    }

    #[test]
    fn wrong_arity_and_wrong_types_name_the_parameter() {
        let point = Val::Record(vec![("x".into(), Val::S32(0)), ("y".into(), Val::S32(0))]);
        let describe = types("describe");
        check("add", &[Val::U32(1)], "add: expected 2 argument(s), got 1");
        check(
            "add",
            &[Val::U32(1), Val::U32(2), Val::U32(3)],
            "expected 2 argument(s), got 3",
        );
        check(
            "nothing",
            &[Val::Bool(true)],
            "expected 0 argument(s), got 1",
        );
        check(
            "add",
            &[Val::U32(1), Val::Bool(true)],
            "parameter `b` has type u32",
        );
        check("echo-u8", &[Val::U16(256)], "parameter `v` has type u8");
        check(
            "echo-string",
            &[Val::Char('x')],
            "parameter `v` has type string",
        );
        check(
            &describe,
            &[point.clone(), Val::Enum("purple".into()), Val::Option(None)],
            "parameter `hue`",
        );
        check(
            &describe,
            &[point.clone(), Val::Enum("red".into()), Val::U32(1)],
            "parameter `label`",
        );
        check(
            &describe,
            &[
                Val::Record(vec![("x".into(), Val::S32(0))]),
                Val::Enum("red".into()),
                Val::Option(None),
            ],
            "parameter `at`",
        );
        check(
            &types("echo-perms"),
            &[Val::Flags(vec!["admin".into()])],
            "parameter `p`",
        );
        check_wave("echo-u8(256)", "echo-u8: ");
        check_wave("echo-u8()", "echo-u8: ");
        check_wave(
            &format!("{describe}({{x: 0, y: 0}}, purple, none)"),
            &describe,
        );
        check_wave("echo-bool(true", "not a WAVE function call");
    }

    /// A value of another type written the same in WAVE (`Val::S32(2)` for a `u32`,
    /// `Val::U64(1)` for an `s8`) is refused naming the parameter: the check is by
    /// structure (it once compared WAVE text and let wasmtime refuse the call as a
    /// host error naming no parameter).
    #[test]
    fn a_value_of_another_type_written_the_same_names_the_parameter() {
        check(
            "add",
            &[Val::U32(1), Val::S32(2)],
            "parameter `b` has type u32",
        );
        check("echo-s8", &[Val::U64(1)], "parameter `v` has type s8");
        check(
            "echo-f64",
            &[Val::Float32(1.5)],
            "parameter `v` has type f64",
        );
    }

    #[test]
    fn unknown_functions_are_named() {
        let mut k = kitchen();
        for name in [
            "nope",
            "echo-point",
            "demo:kitchen/nope#echo-point",
            &types("nope"),
        ] {
            let e = k.call(name, &[]).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::UnknownFunction { name: n } if n == name),
                "{name}: {e:?}"
            );
        }
    }
}

mod typed {
    //! Typed calls with the types `bindgen!` generates from `kitchen.wit`.

    use super::*;

    #[allow(missing_docs)]
    mod bindings {
        wasmtime::component::bindgen!({
            path: "../../guest-examples/kitchen/wit/kitchen.wit",
            world: "kitchen",
        });
    }

    use bindings::Order;
    use bindings::exports::demo::kitchen::types::{Color, Everything, Perms, Point, Shape};

    #[test]
    fn records_and_named_types_with_bindgen() {
        let mut k = kitchen();
        let order = Order {
            id: 7,
            qty: 21,
            price: 9.99,
            sku: "sku-ü".into(),
        };
        let (doubled,): (Order,) = k.call_typed("double-order", (order,)).unwrap();
        assert_eq!(
            (doubled.id, doubled.qty, doubled.price, doubled.sku.as_str()),
            (7, 42, 9.99, "SKU-Ü")
        );
        let (p,): (Point,) = k
            .call_typed(&types("echo-point"), (Point { x: -1, y: 1 },))
            .unwrap();
        assert_eq!((p.x, p.y), (-1, 1));
        let (s,): (Shape,) = k
            .call_typed(&types("echo-shape"), (Shape::Labelled("l".into()),))
            .unwrap();
        assert!(matches!(s, Shape::Labelled(l) if l == "l"));
        let everything = Everything {
            flag: true,
            small: -8,
            big: u64::MAX,
            ratio: 0.5,
            letter: 'λ',
            name: "n".into(),
            bytes: vec![1, 2, 3],
            pair: (1, -1),
            at: Point { x: 2, y: 3 },
            hue: Color::Green,
            access: Perms::READ | Perms::EXEC,
            outline: Shape::Circle(2.0),
            maybe: Some(5),
            outcome: Ok("fine".into()),
        };
        let (back,): (Everything,) = k
            .call_typed(&types("echo-everything"), (everything.clone(),))
            .unwrap();
        assert_eq!(format!("{back:?}"), format!("{everything:?}"));
        let (bytes,): (Vec<u8>,) = k.call_typed("echo-bytes", (vec![0u8, 255],)).unwrap();
        assert_eq!(bytes, [0, 255]);
    }

    #[test]
    fn types_that_do_not_match_are_invalid_arguments() {
        let mut k = kitchen();
        let e = k
            .call_typed::<(u32,), (Order,)>("double-order", (1,))
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
            "{e}"
        );
        let e = k
            .call_typed::<(Point,), (Point,)>("double-order", (Point { x: 0, y: 0 },))
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
            "{e}"
        );
        assert!(!k.is_poisoned());
    }
}

mod hostile {
    //! The hostile component under the limits: each failure has its kind and poisons.

    use super::*;

    /// The instance is poisoned and says so on the next call.
    fn check_poisoned(instance: &mut ComponentInstance) {
        assert!(instance.is_poisoned());
        let e = instance.call("fine", &[]).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Poisoned { .. }), "{e:?}");
    }

    #[test]
    fn fuel_stops_an_endless_loop() {
        let mut h = hostile(EngineConfig::default().fuel(Some(10_000_000)).timeout(None));
        assert_eq!(h.call_wave("fine()").unwrap(), "42");
        let e = h.call("spin", &[]).unwrap_err();
        assert!(e.is_trap(&TrapKind::OutOfFuel), "{e:?}");
        check_poisoned(&mut h);
    }

    #[test]
    fn a_timeout_stops_an_endless_loop() {
        let timeout = Duration::from_millis(100);
        let mut h = hostile(EngineConfig::default().fuel(None).timeout(Some(timeout)));
        let started = Instant::now();
        let e = h.call("spin", &[]).unwrap_err();
        assert!(e.is_trap(&TrapKind::Timeout), "{e:?}");
        assert!(started.elapsed() < timeout * 50, "{:?}", started.elapsed());
        check_poisoned(&mut h);
    }

    #[test]
    fn a_memory_hog_hits_the_memory_limit() {
        let mut h = hostile(EngineConfig::default().max_memory(32 << 20));
        let e = h.call("hog", &[]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Limit(LimitKind::Memory { .. })),
            "{e:?}"
        );
        check_poisoned(&mut h);
    }

    #[test]
    fn a_huge_list_result_fails_cleanly() {
        let mut h = hostile(EngineConfig::default().max_memory(64 << 20));
        // A list that fits is returned whole.
        let list = h.call("huge", &[Val::U32(1000)]).unwrap();
        assert!(matches!(&list[..], [Val::List(l)] if l.len() == 1000 && l[999] == Val::U32(999)));
        // 2^28 elements of 4 bytes do not fit under the limit: the guest's allocation
        // fails (a trap), which the limiter reports as the memory limit.
        let e = h.call("huge", &[Val::U32(1 << 28)]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Limit(LimitKind::Memory { .. })),
            "{e:?}"
        );
        check_poisoned(&mut h);
    }

    /// A list that fits in the guest's memory but whose `Val`s would take far more on
    /// the host: wasmtime's hostcall fuel (128 MiB of data copied per call, not one of
    /// membrane's limits) stops the lifting.
    #[test]
    fn a_huge_list_under_the_memory_limit_is_stopped_while_lifted() {
        let mut h = hostile(EngineConfig::default());
        let e = h.call("huge", &[Val::U32(1 << 24)]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Host { message } if message.contains("too much data")),
            "{e:?}"
        );
        check_poisoned(&mut h);
    }

    #[test]
    fn a_list_result_past_memory_is_refused() {
        let mut h = hostile(EngineConfig::default());
        let e = h.call("past-memory", &[]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Host { message } if message.contains("out of bounds")),
            "{e:?}"
        );
        check_poisoned(&mut h);
    }

    #[test]
    fn a_panic_is_a_trap_and_poisons() {
        let mut h = hostile(EngineConfig::default());
        let e = h.call_wave("boom(\"now\")").unwrap_err();
        assert!(e.is_trap(&TrapKind::Unreachable), "{e:?}");
        check_poisoned(&mut h);
        // Another instance of the same component is unharmed.
        let mut fresh = hostile(EngineConfig::default());
        assert_eq!(fresh.call("fine", &[]).unwrap(), [Val::U32(42)]);
    }

    #[test]
    fn missing_imports_are_named_at_instantiation() {
        let component = component_on(engine(), "missing-import");
        let mut imports = component.imports();
        imports.sort();
        assert_eq!(imports, ["demo:needy/host", "notify"]);
        let e = component.instantiate().unwrap_err();
        match e.kind() {
            ErrorKind::MissingImports { imports } => {
                let mut imports = imports.clone();
                imports.sort();
                assert_eq!(imports, ["demo:needy/host", "notify"]);
            }
            other => panic!("expected missing imports, got {other:?}"),
        }
        assert!(e.to_string().contains("notify"), "{e}");
    }
}

/// Components in a `Runtime`, beside a core module: called by name with values and
/// WAVE under the module's policy and limits, counted.
mod in_a_runtime {
    use super::*;
    use membrane_host::component::{ComponentImports, RuntimeComponents};
    use membrane_host::{InstancePolicy, ModuleSpec, Runtime, RuntimeConfig};

    fn runtime_with(name: &str, guest: &str, engine: &Engine, spec: ModuleSpec) -> Runtime {
        let runtime = Runtime::new(RuntimeConfig::default());
        let component = component_on(engine, guest).for_runtime(ComponentImports::new());
        runtime.add(name, component, spec).unwrap();
        runtime
    }

    #[test]
    fn called_with_values_and_wave_under_every_policy_and_counted() {
        for spec in [
            ModuleSpec::persistent(),
            ModuleSpec::pooled(2),
            ModuleSpec::fresh_per_call(),
        ] {
            let policy = spec.policy;
            let runtime = runtime_with("kitchen", "kitchen", engine(), spec);
            runtime
                .add(
                    "echo",
                    crate::support::module("echo")
                        .prepare(&membrane_host::HostFunctions::<()>::new())
                        .unwrap(),
                    ModuleSpec::default(),
                )
                .unwrap();
            assert_eq!(runtime.call_wave("kitchen", "add(40, 2)").unwrap(), "42");
            assert_eq!(
                runtime
                    .call_values("kitchen", "add", &[Val::U32(1), Val::U32(2)])
                    .unwrap(),
                [Val::U32(3)]
            );
            let echoed = runtime
                .call_wave(
                    "kitchen",
                    &format!("{}({{x: -1, y: 2}})", types("echo-point")),
                )
                .unwrap();
            assert_eq!(echoed, "{x: -1, y: 2}", "{policy:?}");
            // The core module beside it is called with payloads, and each kind refuses
            // the other's calls clearly.
            assert_eq!(runtime.call_raw("echo", "echo", b"hi").unwrap(), b"hi");
            let e = runtime.call_raw("kitchen", "add", b"hi").unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
                "{e}"
            );
            let e = runtime.call_wave("echo", "echo(1)").unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
                "{e}"
            );
            let e = runtime.call_wave("kitchen", "add(1)").unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidArguments { .. }),
                "{e}"
            );
            let e = runtime.call_wave("kitchen", "nope()").unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::UnknownFunction { .. }), "{e}");

            let info = runtime.module("kitchen").unwrap();
            assert!(info.functions.contains(&"add".to_string()));
            assert_eq!(info.policy, policy);
            // The unknown function is not a call; the refused ones are (other errors).
            assert_eq!(info.counters.ok, 3, "{policy:?}");
            assert_eq!(info.counters.other_errors, 2, "{policy:?}");
            assert_eq!(info.counters.calls, 5, "{policy:?}");
        }
    }

    #[test]
    fn limits_and_overrides_apply_and_a_poisoned_instance_is_replaced() {
        let engine = Engine::new(
            EngineConfig::default()
                .fuel(Some(u64::MAX / 4))
                .timeout(Some(Duration::from_secs(60))),
        )
        .unwrap();
        let spec = ModuleSpec::persistent().fuel(Some(1_000_000));
        let runtime = runtime_with("hostile", "hostile-component", &engine, spec);
        let e = runtime.call_wave("hostile", "spin()").unwrap_err();
        assert!(e.is_trap(&TrapKind::OutOfFuel), "{e:?}");
        // The persistent instance was poisoned and is replaced for the next call.
        assert_eq!(runtime.call_wave("hostile", "fine()").unwrap(), "42");
        let e = runtime.call_wave("hostile", "boom(\"now\")").unwrap_err();
        assert!(e.is_trap(&TrapKind::Unreachable), "{e:?}");
        assert_eq!(
            runtime.call_values("hostile", "fine", &[]).unwrap(),
            [Val::U32(42)]
        );

        let spec =
            ModuleSpec::new(InstancePolicy::FreshPerCall).timeout(Some(Duration::from_millis(100)));
        let runtime = runtime_with("hostile", "hostile-component", &engine, spec);
        let started = Instant::now();
        let e = runtime.call_wave("hostile", "spin()").unwrap_err();
        assert!(e.is_trap(&TrapKind::Timeout), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let counters = runtime.module("hostile").unwrap().counters;
        assert_eq!(counters.limits_hit, 1);
    }

    #[test]
    fn a_component_missing_imports_is_refused_when_added() {
        let runtime = Runtime::new(RuntimeConfig::default());
        let component =
            component_on(engine(), "missing-import").for_runtime(ComponentImports::new());
        let e = runtime
            .add("needy", component, ModuleSpec::default())
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::MissingImports { .. }), "{e}");
        assert!(runtime.module("needy").is_none());
    }
}
