//! WASI imports refused without a policy (sockets whatever the policy), and the output
//! capture: lines, their bound, the per-call bound. The real WASI guest is tested from
//! membrane-host (`tests/all/wasi.rs`).

use std::sync::{Arc, Mutex};

use membrane_runtime::ErrorKind;

use super::*;
use crate::component::ComponentImports;
use crate::{Engine, EngineConfig};

/// Imports `wasi:cli/environment@0.2.0` (`get-arguments`) and, if `sockets`,
/// `wasi:sockets/instance-network@0.2.0` (an interface with a resource, here only its
/// name matters).
fn component(sockets: bool) -> crate::component::Component {
    let extra = if sockets {
        r#"(import "wasi:sockets/instance-network@0.2.0" (instance))"#
    } else {
        ""
    };
    let wat = format!(
        r#"(component
  (import "wasi:cli/environment@0.2.0" (instance $env
    (export "get-arguments" (func (result (list string))))))
  {extra}
  (core module $m
    (memory (export "mem") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024)))
  (core instance $i (instantiate $m))
  (core func $args (canon lower (func $env "get-arguments")
    (memory $i "mem") (realloc (func $i "realloc"))))
  (core module $n
    (import "env" "args" (func $args (param i32)))
    (import "i" "mem" (memory 1))
    (func (export "count") (result i32)
      (call $args (i32.const 0))
      (i32.load (i32.const 4))))
  (core instance $j (instantiate $n
    (with "env" (instance (export "args" (func $args))))
    (with "i" (instance $i))))
  (func (export "count") (result u32) (canon lift (core func $j "count")))
)"#
    );
    let engine = Engine::new(EngineConfig::default()).unwrap();
    engine
        .load_component(&wat::parse_str(wat).unwrap())
        .unwrap()
}

fn missing(component: &crate::component::Component, imports: &ComponentImports) -> Vec<String> {
    match component.instantiate_with(imports) {
        Err(e) => match e.kind() {
            ErrorKind::MissingImports { imports } => imports.clone(),
            other => panic!("{other:?}"),
        },
        Ok(_) => panic!("instantiated"),
    }
}

#[test]
fn wasi_imports_need_a_policy_and_sockets_are_never_linked() {
    let plain = component(false);
    assert_eq!(
        missing(&plain, &ComponentImports::new()),
        ["wasi:cli/environment@0.2.0"]
    );
    let mut imports = ComponentImports::new();
    imports.wasi(WasiPolicy::default());
    let mut instance = plain.instantiate_with(&imports).unwrap();
    assert_eq!(instance.call_wave("count()").unwrap(), "0");
    imports.wasi(WasiPolicy::default().arg("prog").arg("x"));
    let mut instance = plain.instantiate_with(&imports).unwrap();
    assert_eq!(instance.call_wave("count()").unwrap(), "2");

    let with_sockets = component(true);
    assert_eq!(
        missing(&with_sockets, &imports),
        ["wasi:sockets/instance-network@0.2.0"]
    );
    assert_eq!(
        missing(&with_sockets, &ComponentImports::new()),
        [
            "wasi:cli/environment@0.2.0",
            "wasi:sockets/instance-network@0.2.0"
        ]
    );
}

#[test]
fn only_0_2_versions_of_the_linked_interfaces_are_provided() {
    assert!(links("wasi:cli/environment@0.2.0"));
    assert!(links("wasi:io/streams@0.2.6"));
    assert!(!links("wasi:io/streams@0.3.0"));
    assert!(!links("wasi:io/streams"));
    assert!(!links("wasi:sockets/tcp@0.2.0"));
    assert!(!links("wasi:http/types@0.2.0"));
}

/// Collects the formatted `tracing` events of `f`, one line each.
fn captured(f: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    text.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn output_is_split_at_newlines_and_bounded() {
    let lines = captured(|| {
        let output = Output::new(Arc::from("capt"), 8, 40);
        output.begin_call();
        output.write(Stream::Stdout, b"one\ntw");
        output.write(Stream::Stderr, b"err\r\n");
        output.write(Stream::Stdout, b"o\n0123456789abc\npartial");
        output.end_call();
        // The budget is per call: 40 bytes, then one warning and nothing more.
        output.begin_call();
        output.write(Stream::Stdout, &[b'x'; 30]);
        output.write(Stream::Stdout, b"\nyyyyyyyyyyyyyyyyyyyy\n");
        output.write(Stream::Stderr, b"dropped\n");
        output.end_call();
    });
    let expected = [
        r#"INFO membrane::component: one component=capt stream="stdout""#,
        r#"INFO membrane::component: err component=capt stream="stderr""#,
        r#"INFO membrane::component: two component=capt stream="stdout""#,
        r#"INFO membrane::component: 01234567 component=capt stream="stdout" truncated=true"#,
        r#"INFO membrane::component: partial component=capt stream="stdout""#,
        r#"INFO membrane::component: xxxxxxxx component=capt stream="stdout" truncated=true"#,
        r#"INFO membrane::component: yyyyyyyy component=capt stream="stdout" truncated=true"#,
        r#"WARN membrane::component: output limit reached: the rest of this call's output is dropped component=capt stream="stdout" limit=40"#,
    ];
    assert_eq!(lines, expected);
}
