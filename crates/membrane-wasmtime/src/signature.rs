//! The ABI's function signatures and the checks of wasm types against them.

use wasmtime::{ExternType, FuncType, ValType};

/// The ABI signature of guest functions.
pub(crate) const FUNCTION_SIGNATURE: &str = "(func (param i32 i32) (result i64))";

/// The type of a host function import (`docs/abi.md` §4): request pointer and length,
/// response buffer pointer and capacity; packed response location.
pub(crate) const HOST_FUNCTION_SIGNATURE: &str = "(func (param i32 i32 i32 i32) (result i64))";
/// The ABI signature of the allocation entry.
pub(crate) const ALLOC_SIGNATURE: &str = "(func (param i32 i32) (result i32))";

/// Whether `ty` has these parameter and result types, each checked by a predicate.
pub(crate) fn has_signature(
    ty: &FuncType,
    params: &[fn(&ValType) -> bool],
    results: &[fn(&ValType) -> bool],
) -> bool {
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(p, ok)| ok(&p))
        && ty.results().zip(results).all(|(r, ok)| ok(&r))
}

/// Whether `t` is `i32`.
pub(crate) fn is_i32(t: &ValType) -> bool {
    matches!(t, ValType::I32)
}

/// Whether `t` is `i64`.
pub(crate) fn is_i64(t: &ValType) -> bool {
    matches!(t, ValType::I64)
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
