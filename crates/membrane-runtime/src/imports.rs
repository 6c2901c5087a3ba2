//! The ABI's function signatures, and the table of what a host provides to a module's
//! imports, keyed by `(import module, name)`: the intrinsics (`membrane`) and the host
//! functions (`membrane_host`), each with the signature the import must have.

use membrane_types::{
    CALL_CALLABLE_IMPORT, CALL_IMPORT, CONTEXT_IMPORT, CRC32_IMPORT, HOST_MODULE,
    INTRINSICS_MODULE, MODULES_IMPORT, PANIC_IMPORT, RUNTIME_MODULE, SERVICE_IMPORTS,
    SERVICES_MODULE,
};

/// A wasm value type the ABI uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

/// A function signature of the ABI (`docs/abi.md`), with its WAT text for error
/// messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The parameter types.
    pub params: &'static [ValType],
    /// The result types.
    pub results: &'static [ValType],
    /// The signature as WAT text.
    pub text: &'static str,
}

use ValType::{I32, I64};

/// A guest function: input envelope pointer and length; packed output location.
pub const GUEST_FUNCTION: Signature = Signature {
    params: &[I32, I32],
    results: &[I64],
    text: "(func (param i32 i32) (result i64))",
};

/// The allocation entry: length and reset flag; pointer (0: failed).
pub const ALLOC: Signature = Signature {
    params: &[I32, I32],
    results: &[I32],
    text: "(func (param i32 i32) (result i32))",
};

/// A lifecycle hook (`__membrane_start`, `__membrane_stop`; `docs/abi.md` §8): no
/// parameters; 0, or the packed location of an error envelope.
pub const HOOK: Signature = Signature {
    params: &[],
    results: &[I64],
    text: "(func (result i64))",
};

/// A host function import (`docs/abi.md` §4): request pointer and length, response
/// buffer pointer and capacity; packed response location.
pub const HOST_FUNCTION: Signature = Signature {
    params: &[I32, I32, I32, I32],
    results: &[I64],
    text: "(func (param i32 i32 i32 i32) (result i64))",
};

/// The `membrane.crc32` intrinsic: state, pointer, length; new state.
pub const CRC32_INTRINSIC: Signature = Signature {
    params: &[I32, I32, I32],
    results: &[I32],
    text: "(func (param i32 i32 i32) (result i32))",
};

/// The `membrane.panic` intrinsic: message pointer and length.
pub const PANIC_INTRINSIC: Signature = Signature {
    params: &[I32, I32],
    results: &[],
    text: "(func (param i32 i32))",
};

/// The runtime's imports (`membrane_runtime`, `docs/abi.md` §8), all with the
/// [`HOST_FUNCTION`] signature. Always provided: outside a runtime they answer with
/// `ErrorCode::NOT_IN_RUNTIME`.
pub const RUNTIME_IMPORTS: [&str; 4] = [
    CALL_IMPORT,
    CALL_CALLABLE_IMPORT,
    CONTEXT_IMPORT,
    MODULES_IMPORT,
];

/// The host functions offered to modules by name, each with an executor's callable
/// `F`; the intrinsics, the runtime's imports and the service imports
/// (`membrane_services`, `docs/abi.md` §10: linked always, granted by a runtime) are
/// always provided.
pub struct HostTable<F> {
    functions: Vec<(String, F)>,
}

impl<F> Default for HostTable<F> {
    fn default() -> Self {
        HostTable {
            functions: Vec::new(),
        }
    }
}

impl<F: Clone> Clone for HostTable<F> {
    fn clone(&self) -> Self {
        HostTable {
            functions: self.functions.clone(),
        }
    }
}

impl<F> HostTable<F> {
    /// No host functions.
    pub fn new() -> HostTable<F> {
        HostTable::default()
    }

    /// Offers `f` as the host function `name`, replacing any earlier one.
    pub fn insert(&mut self, name: &str, f: F) {
        self.functions.retain(|(n, _)| n != name);
        self.functions.push((name.to_string(), f));
    }

    /// The host functions' names, in the order they were first inserted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.functions.iter().map(|(n, _)| n.as_str())
    }

    /// Whether a host function of this name is offered.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.iter().any(|(n, _)| n == name)
    }

    /// The host functions with their names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &F)> + '_ {
        self.functions.iter().map(|(n, f)| (n.as_str(), f))
    }

    /// The signature the import `module::name` must have, if the host provides it.
    pub fn provided(&self, module: &str, name: &str) -> Option<&'static Signature> {
        match (module, name) {
            (INTRINSICS_MODULE, CRC32_IMPORT) => Some(&CRC32_INTRINSIC),
            (INTRINSICS_MODULE, PANIC_IMPORT) => Some(&PANIC_INTRINSIC),
            (HOST_MODULE, name) if self.contains(name) => Some(&HOST_FUNCTION),
            (RUNTIME_MODULE, name) if RUNTIME_IMPORTS.contains(&name) => Some(&HOST_FUNCTION),
            (SERVICES_MODULE, name) if SERVICE_IMPORTS.iter().any(|(n, _)| *n == name) => {
                Some(&HOST_FUNCTION)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provides_intrinsics_and_inserted_host_functions() {
        let mut table = HostTable::new();
        table.insert("add", 1);
        table.insert("log", 2);
        table.insert("add", 3);
        assert_eq!(table.names().collect::<Vec<_>>(), ["log", "add"]);
        assert_eq!(table.iter().map(|(_, f)| *f).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(table.provided(HOST_MODULE, "add"), Some(&HOST_FUNCTION));
        assert_eq!(table.provided(HOST_MODULE, "sub"), None);
        assert_eq!(
            table.provided(INTRINSICS_MODULE, CRC32_IMPORT),
            Some(&CRC32_INTRINSIC)
        );
        assert_eq!(
            table.provided(INTRINSICS_MODULE, PANIC_IMPORT),
            Some(&PANIC_INTRINSIC)
        );
        assert_eq!(table.provided(INTRINSICS_MODULE, "add"), None);
        assert_eq!(table.provided("env", "add"), None);
        for name in RUNTIME_IMPORTS {
            assert_eq!(table.provided(RUNTIME_MODULE, name), Some(&HOST_FUNCTION));
        }
        assert_eq!(table.provided(RUNTIME_MODULE, "add"), None);
        for (name, _) in SERVICE_IMPORTS {
            assert_eq!(table.provided(SERVICES_MODULE, name), Some(&HOST_FUNCTION));
        }
        assert_eq!(table.provided(SERVICES_MODULE, "add"), None);
    }
}
