//! The wasm types of a module checked against the ABI's signatures
//! (`membrane_runtime::imports`).

use membrane_runtime::imports::{self, Signature};
use wasmtime::{ExternType, FuncType, ValType};

/// Whether `ty` has the signature `sig`.
pub(crate) fn has_signature(ty: &FuncType, sig: &Signature) -> bool {
    ty.params().len() == sig.params.len()
        && ty.results().len() == sig.results.len()
        && ty.params().zip(sig.params).all(|(p, s)| is(&p, *s))
        && ty.results().zip(sig.results).all(|(r, s)| is(&r, *s))
}

/// Whether an import or export of type `ty` is a function with the signature `sig`.
pub(crate) fn fits(ty: &ExternType, sig: &Signature) -> bool {
    matches!(ty, ExternType::Func(f) if has_signature(f, sig))
}

/// Whether `t` is the ABI type `s`.
fn is(t: &ValType, s: imports::ValType) -> bool {
    match s {
        imports::ValType::I32 => matches!(t, ValType::I32),
        imports::ValType::I64 => matches!(t, ValType::I64),
        _ => false,
    }
}

/// A short text for an extern type.
pub(crate) fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => f.to_string(),
        ExternType::Memory(m) => format!("memory ({} pages minimum)", m.minimum()),
        ExternType::Table(t) => format!("table ({} elements minimum)", t.minimum()),
        ExternType::Global(g) => format!("global {}", g.content()),
        ExternType::Tag(_) => "tag".to_string(),
    }
}
