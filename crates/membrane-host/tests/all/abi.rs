//! The ABI check at load time: version, required exports, signatures.

use membrane_host::{AbiViolation, ErrorKind};

use crate::support::engine;

/// A minimal module: the given extra items plus whatever `items` declares.
fn load(items: &str) -> membrane_host::Result<membrane_host::Module> {
    let wat = format!("(module {items})");
    engine().load(&wat::parse_str(wat).unwrap())
}

const MEMORY: &str = r#"(memory (export "memory") 1)"#;
const ALLOC: &str =
    r#"(func (export "__membrane_alloc") (param i32 i32) (result i32) i32.const 8)"#;
const V1: &str = r#"(func (export "__membrane_abi_v1"))"#;

fn check(items: &str, expected: AbiViolation) {
    let err = load(items).unwrap_err();
    match err.kind() {
        ErrorKind::Abi(v) => assert_eq!(*v, expected, "{err}"),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[test]
fn abi_version_mismatch_names_both_versions() {
    let err = load(&format!(
        r#"{MEMORY} {ALLOC} (func (export "__membrane_abi_v2"))"#
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "abi violation: module speaks abi version 2, this host speaks version 1"
    );
    check(
        &format!(r#"{MEMORY} {ALLOC} (func (export "__membrane_abi_v2"))"#),
        AbiViolation::VersionMismatch { module: 2, host: 1 },
    );
}

#[test]
fn non_membrane_module_is_refused() {
    check(&format!("{MEMORY} {ALLOC}"), AbiViolation::NotMembrane);
}

#[test]
fn missing_exports_are_named() {
    check(
        &format!("{ALLOC} {V1}"),
        AbiViolation::MissingExport {
            name: "memory".into(),
        },
    );
    check(
        &format!("{MEMORY} {V1}"),
        AbiViolation::MissingExport {
            name: "__membrane_alloc".into(),
        },
    );
}

#[test]
fn wrongly_typed_exports_are_refused() {
    let err = load(&format!(
        r#"{MEMORY} {V1} (func (export "__membrane_alloc") (param i32) (result i32) i32.const 8)"#
    ))
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "__membrane_alloc"),
        "{err:?}"
    );
    // A function with another signature loads, but calling it is an ABI error.
    let module = load(&format!(
        r#"{MEMORY} {ALLOC} {V1} (func (export "f") (param i32) (result i32) i32.const 0)"#
    ))
    .unwrap();
    assert_eq!(module.functions().count(), 0);
    let mut instance = module
        .prepare(&membrane_host::HostFunctions::new())
        .unwrap()
        .instantiate(())
        .unwrap();
    let err = instance.call_raw("f", b"").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Abi(AbiViolation::WrongExportType { name, .. }) if name == "f"),
        "{err:?}"
    );
}

/// The lifecycle hooks are optional; present, they are `() -> i64` functions, or the
/// module is refused at load naming the hook.
#[test]
fn lifecycle_hooks_are_type_checked_at_load() {
    let base = format!("{MEMORY} {ALLOC} {V1}");
    load(&format!(
        r#"{base} (func (export "__membrane_start") (result i64) i64.const 0)
        (func (export "__membrane_stop") (result i64) i64.const 0)"#
    ))
    .unwrap();
    for (hook, item, found) in [
        (
            "__membrane_start",
            r#"(func (export "__membrane_start") (result i32) i32.const 0)"#,
            "(type (func (result i32)))",
        ),
        (
            "__membrane_stop",
            r#"(func (export "__membrane_stop") (param i32 i32) (result i64) i64.const 0)"#,
            "(type (func (param i32 i32) (result i64)))",
        ),
        (
            "__membrane_start",
            r#"(global (export "__membrane_start") i64 (i64.const 0))"#,
            "global i64",
        ),
    ] {
        check(
            &format!("{base} {item}"),
            AbiViolation::WrongExportType {
                name: hook.into(),
                expected: "(func (result i64))",
                found: found.into(),
            },
        );
    }
}

#[test]
fn invalid_wasm_is_an_invalid_module() {
    let err = engine().load(b"\0asm\x01\0\0\0garbage").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidModule { .. }),
        "{err:?}"
    );
    let err = engine().load(b"(module)").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidModule { .. }),
        "{err:?}"
    );
}
