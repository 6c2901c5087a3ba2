//! `cargo xtask build-guests`: the guest examples as `target/guests/<name>.wasm`.
//!
//! Most guests are membrane core modules, copied as built. A guest built with
//! wit-bindgen carries its component type in a custom section `component-type:*` of
//! its core module; such a module is turned into a component with wit-component
//! (wasm32-unknown-unknown imports nothing a WASI adapter would provide) and the
//! component is written under the guest's name.

use std::fs;

use crate::run;

/// Where the built guests go; tests, benches and the demo read them from here (or from
/// `$MEMBRANE_GUESTS_DIR`).
pub(crate) const GUESTS_DIR: &str = "target/guests";

/// Target dir of the guest build (its own, so it never waits on the host build's lock).
const BUILD_DIR: &str = "target/guest-build";

/// The prefix of the custom sections in which wit-bindgen embeds a component type.
const COMPONENT_TYPE_SECTION: &str = "component-type";

pub(crate) fn build() -> Result<(), String> {
    ensure_wasm_target()?;
    run::cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "--manifest-path",
        "guest-examples/Cargo.toml",
        "--target-dir",
        BUILD_DIR,
    ])?;
    let root = run::root();
    let out = root.join(BUILD_DIR).join("wasm32-unknown-unknown/release");
    let dest = root.join(GUESTS_DIR);
    fs::create_dir_all(&dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let (mut copied, mut components) = (0, 0);
    for entry in fs::read_dir(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "wasm") {
            let name = path.file_name().unwrap_or_default();
            let bytes =
                fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if has_component_type(&bytes) {
                let component = componentize(&bytes)
                    .map_err(|e| format!("cannot make a component of {}: {e}", path.display()))?;
                let target = dest.join(name);
                fs::write(&target, component)
                    .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
                components += 1;
            } else {
                fs::write(dest.join(name), &bytes)
                    .map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
                copied += 1;
            }
        }
    }
    eprintln!("xtask: {copied} guests and {components} components in {GUESTS_DIR}/");
    crate::wasi_guests::build()?;
    Ok(())
}

/// Whether a core module carries a component type embedded by wit-bindgen (a custom
/// section `component-type` or `component-type:...`). Bytes that do not parse carry
/// none: the copy as built is left for the host to refuse.
fn has_component_type(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .map_while(Result::ok)
        .any(|payload| match payload {
            wasmparser::Payload::CustomSection(section) => {
                let name = section.name();
                name == COMPONENT_TYPE_SECTION
                    || name
                        .strip_prefix(COMPONENT_TYPE_SECTION)
                        .is_some_and(|rest| rest.starts_with(':'))
            }
            _ => false,
        })
}

/// The component of a core module built with wit-bindgen, validated.
fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .map_err(|e| format!("its component type does not fit the module: {e:#}"))?
        .encode()
        .map_err(|e| format!("wit-component cannot encode it: {e:#}"))
}

/// `rustup` does not add a target listed in rust-toolchain.toml to a toolchain that is
/// already installed, so ask for it explicitly (a no-op when it is there).
pub(crate) fn ensure_wasm_target() -> Result<(), String> {
    if std::process::Command::new("rustup")
        .arg("--version")
        .output()
        .is_err()
    {
        // No rustup: the toolchain is managed some other way; the build will say if
        // the target is missing.
        return Ok(());
    }
    run::command(
        "rustup",
        &["target", "add", "wasm32-unknown-unknown", "wasm32-wasip2"],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(custom_section: Option<&str>, expected: bool) {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        if let Some(name) = custom_section {
            let payload_len = 1 + name.len() + 3;
            module.push(0);
            module.push(u8::try_from(payload_len).unwrap());
            module.push(u8::try_from(name.len()).unwrap());
            module.extend_from_slice(name.as_bytes());
            module.extend_from_slice(b"abc");
        }
        assert_eq!(has_component_type(&module), expected, "{custom_section:?}");
    }

    #[test]
    fn finds_the_component_type_section_of_wit_bindgen() {
        check(None, false);
        check(Some("producers"), false);
        check(Some("component-type"), true);
        check(
            Some("component-type:wit-bindgen:0.63.0:demo:kitchen:kitchen"),
            true,
        );
        check(Some("component-typeface"), false);
    }

    #[test]
    fn bytes_that_are_not_wasm_are_refused_clearly() {
        assert!(!has_component_type(b"not wasm"));
        let e = componentize(b"not wasm").unwrap_err();
        assert!(e.starts_with("its component type does not fit"), "{e}");
    }
}
