//! Compiled modules: loading them with an engine ([`Engine::load`]), the ABI check at
//! load time, the function table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use membrane_runtime::{AbiViolation, Error, Result};
use membrane_types::{
    ABI_VERSION, ABI_VERSION_EXPORT_PREFIX, ALLOC_EXPORT, MEMORY_EXPORT, MESSAGE_EXPORT,
    RESERVED_EXPORT_PREFIX, START_EXPORT, STOP_EXPORT,
};
use wasmtime::ExternType;

use crate::engine::Engine;
use membrane_runtime::imports::{ALLOC, GUEST_FUNCTION, HOOK};

use crate::signature::{describe, has_signature};

/// A compiled membrane module whose ABI has been checked. Cheap to clone, `Send + Sync`.
///
/// Instantiate it through [`Module::prepare`], which links the host functions once and
/// returns an [`InstancePre`](crate::InstancePre) that makes instances quickly.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) engine: Engine,
    pub(crate) module: wasmtime::Module,
    pub(crate) functions: Vec<FunctionExport>,
    size: usize,
    /// blake3 of the wasm bytes.
    hash: [u8; 32],
}

/// An export that looks like a guest function (a non-reserved function export).
pub(crate) struct FunctionExport {
    pub(crate) name: String,
    pub(crate) export: wasmtime::ModuleExport,
    /// `Err(found type)` when the signature is not `(i32, i32) -> i64`.
    pub(crate) signature: std::result::Result<(), String>,
    /// Listed among the module's functions (the message handler is not).
    pub(crate) public: bool,
}

/// The ABI version a module declares, from the name of its version export.
fn declared_abi_version(module: &wasmtime::Module) -> Result<u32> {
    let mut declared = None;
    for export in module.exports() {
        if let Some(version) = export.name().strip_prefix(ABI_VERSION_EXPORT_PREFIX) {
            let version: u32 = version.parse().map_err(|_| {
                Error::abi(AbiViolation::WrongExportType {
                    name: export.name().to_string(),
                    expected: "`__membrane_abi_v` followed by a decimal version",
                    found: "a name without a version number".to_string(),
                })
            })?;
            if declared.is_some_and(|d| d != version) {
                return Err(Error::abi(AbiViolation::WrongExportType {
                    name: export.name().to_string(),
                    expected: "one abi version export",
                    found: "several with different versions".to_string(),
                }));
            }
            declared = Some(version);
        }
    }
    declared.ok_or_else(|| Error::abi(AbiViolation::NotMembrane))
}

/// The ABI check of a compiled module (`docs/abi.md`): its ABI version, its memory and
/// allocation exports, and the type of its lifecycle hooks if it has them (memories and
/// tables were checked before compiling, in `resources.rs`). The engine has the module
/// cache run it before keeping a module, and [`Module::new`] runs it again.
pub(crate) fn check_abi(module: &wasmtime::Module) -> Result<()> {
    let version = declared_abi_version(module)?;
    if version != ABI_VERSION {
        return Err(Error::abi(AbiViolation::VersionMismatch {
            module: version,
            host: ABI_VERSION,
        }));
    }
    match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(other) => {
            return Err(Error::abi(AbiViolation::WrongExportType {
                name: MEMORY_EXPORT.into(),
                expected: "a 32-bit unshared memory",
                found: format!("{other:?}"),
            }));
        }
        None => {
            return Err(Error::abi(AbiViolation::MissingExport {
                name: MEMORY_EXPORT.into(),
            }));
        }
    }
    match module.get_export(ALLOC_EXPORT) {
        Some(ExternType::Func(f)) if has_signature(&f, &ALLOC) => {}
        Some(other) => {
            return Err(Error::abi(AbiViolation::WrongExportType {
                name: ALLOC_EXPORT.into(),
                expected: ALLOC.text,
                found: describe(&other),
            }));
        }
        None => {
            return Err(Error::abi(AbiViolation::MissingExport {
                name: ALLOC_EXPORT.into(),
            }));
        }
    }
    // The lifecycle hooks are optional; present, they must have the hook's type.
    for hook in [START_EXPORT, STOP_EXPORT] {
        match module.get_export(hook) {
            None => {}
            Some(ExternType::Func(f)) if has_signature(&f, &HOOK) => {}
            Some(other) => {
                return Err(Error::abi(AbiViolation::WrongExportType {
                    name: hook.into(),
                    expected: HOOK.text,
                    found: describe(&other),
                }));
            }
        }
    }
    Ok(())
}

impl Engine {
    /// Loads a module from its wasm bytes: checks the size limit and the memories and
    /// tables its instances would need against the memory and table limits, takes the compiled
    /// module from the cache (memory, then disk when `cache_dir` is set) or compiles it
    /// into the cache, and checks its ABI. A module that fails the ABI check is not
    /// kept in either cache.
    ///
    /// Problems with the disk cache (unwritable directory, corrupted or incompatible
    /// files) never fail a load: they are reported through `tracing` and the module is
    /// compiled.
    pub fn load(&self, wasm: &[u8]) -> Result<Module> {
        self.check_size(wasm.len())?;
        crate::resources::check(
            wasm,
            self.config().limits.max_memory,
            self.config().limits.max_table_elements,
        )?;
        let cache = self.cache();
        let content = crate::cache::content_hash(wasm);
        let key = cache.key_of::<wasmtime::Module>(&content, wasm.len());
        let compiled = cache.get(self.wasmtime(), key, wasm, check_abi)?;
        Module::new(self.clone(), compiled, wasm.len(), content)
    }

    /// Loads a module from a `.wasm` file (see [`Engine::load`]).
    ///
    /// Reads at most `max_module_size` bytes and one, whatever the file is: a larger
    /// regular file is refused before it is read, and a pipe or a device that delivers
    /// more is refused after one byte past the limit ([`LimitKind::ModuleSize`](membrane_runtime::LimitKind::ModuleSize)).
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        self.load(&self.read_wasm(path)?)
    }

    /// Compiles `wasm` into the cache without instantiating it, so that later loads, in
    /// this process or the next, are cache hits; checks its ABI like [`Engine::load`].
    ///
    /// With a `cache_dir`, makes sure the directory holds the verified artifact and
    /// returns its path: ship the directory's artifacts with a program and an engine of
    /// the same wasmtime version and compilation settings loads them without compiling
    /// (other engines ignore them). Unlike a load, failing to write the artifact is an
    /// error here ([`ErrorKind::Io`](membrane_runtime::ErrorKind::Io), or [`ErrorKind::Config`](membrane_runtime::ErrorKind::Config) when it alone exceeds
    /// `disk_cache_size` or the size bound of cache files for its module, see
    /// `docs/host-guide.md`). Without a `cache_dir`, fills the memory cache and returns
    /// `None`.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Option<PathBuf>> {
        self.check_size(wasm.len())?;
        crate::resources::check(
            wasm,
            self.config().limits.max_memory,
            self.config().limits.max_table_elements,
        )?;
        let cache = self.cache();
        let content = crate::cache::content_hash(wasm);
        let key = cache.key_of::<wasmtime::Module>(&content, wasm.len());
        let compiled = cache.get(self.wasmtime(), key, wasm, check_abi)?;
        let module = Module::new(self.clone(), compiled, wasm.len(), content)?;
        cache.persist(&key, wasm.len(), module.wasmtime())
    }

    /// [`Engine::precompile`] of a `.wasm` file.
    pub fn precompile_file(&self, path: impl AsRef<Path>) -> Result<Option<PathBuf>> {
        let path = path.as_ref();
        self.precompile(&self.read_wasm(path)?)
    }
}

impl Module {
    /// Checks the ABI of a compiled module ([`check_abi`]) and indexes its functions;
    /// It was compiled from `size` bytes of wasm whose blake3 is `hash`.
    pub(crate) fn new(
        engine: Engine,
        module: wasmtime::Module,
        size: usize,
        hash: [u8; 32],
    ) -> Result<Module> {
        check_abi(&module)?;
        let mut functions = Vec::new();
        for export in module.exports() {
            let ExternType::Func(ty) = export.ty() else {
                continue;
            };
            // Reserved names are the ABI's; of them only the message handler is called
            // by name (by a runtime delivering messages), never listed.
            let public = !export.name().starts_with(RESERVED_EXPORT_PREFIX);
            if !public && export.name() != MESSAGE_EXPORT {
                continue;
            }
            let signature = if has_signature(&ty, &GUEST_FUNCTION) {
                Ok(())
            } else {
                Err(ty.to_string())
            };
            let Some(index) = module.get_export_index(export.name()) else {
                continue;
            };
            functions.push(FunctionExport {
                name: export.name().to_string(),
                export: index,
                signature,
                public,
            });
        }
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine,
                module,
                functions,
                size,
                hash,
            }),
        })
    }

    /// The engine the module was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The names of the functions a host can call (exports with the ABI signature).
    pub fn functions(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner
            .functions
            .iter()
            .filter(|f| f.public && f.signature.is_ok())
            .map(|f| f.name.as_str())
    }

    /// Whether the module exports a message handler
    /// ([`MESSAGE_EXPORT`](membrane_types::MESSAGE_EXPORT)) with the signature of a guest
    /// function.
    pub fn handles_messages(&self) -> bool {
        self.inner
            .functions
            .iter()
            .any(|f| !f.public && f.name == MESSAGE_EXPORT && f.signature.is_ok())
    }

    /// Every import as `(module, name)`.
    pub fn imports(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.inner.module.imports().map(|i| (i.module(), i.name()))
    }

    /// Every export as `(name, type)`, reserved ones included.
    pub fn exports(&self) -> impl Iterator<Item = (&str, String)> + '_ {
        self.inner
            .module
            .exports()
            .map(|e| (e.name(), describe(&e.ty())))
    }

    /// Size of the wasm bytes the module was loaded from.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The module's content hash: blake3 of the wasm bytes it was loaded from.
    pub fn content_hash(&self) -> [u8; 32] {
        self.inner.hash
    }

    /// The underlying wasmtime module.
    pub fn wasmtime(&self) -> &wasmtime::Module {
        &self.inner.module
    }

    /// Index of the function `name` in the function table.
    #[inline]
    pub(crate) fn function_index(&self, name: &str) -> Option<usize> {
        self.inner
            .functions
            .iter()
            .position(|f| same_name(f.name.as_bytes(), name.as_bytes()))
    }

    #[inline]
    pub(crate) fn inner(&self) -> &ModuleInner {
        &self.inner
    }
}

/// `a == b` for the short names of functions (up to 16 bytes) without a call to
/// `memcmp`: at most two overlapping loads per side, like a short `memcpy`. Every call
/// looks its function up by name, so this is on the path of every call.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    match n {
        0 => true,
        // First, middle and last byte: every byte of a name of 1 to 3 bytes.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        8..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        _ => a == b,
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("size", &self.inner.size)
            .field("functions", &self.functions().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::same_name;

    /// `same_name` agrees with `==` for every length around its branches, for equal
    /// names and for names differing in any one byte.
    #[test]
    fn same_name_is_equality() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_name(&a, &a.clone()), "len {n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same_name(&a, &b), "len {n}, byte {i}");
            }
            assert!(
                !same_name(&a, &a[..n.saturating_sub(1)]) || n == 0,
                "len {n}"
            );
        }
    }
}
