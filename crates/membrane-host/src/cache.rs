//! The compiled-module cache.

use crate::config::EngineConfig;
use crate::error::{ErrorKind, Result};

/// Counters of the compiled-module cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads answered from memory.
    pub memory_hits: u64,
    /// Loads that compiled.
    pub misses: u64,
}

/// Compiles modules (the cache itself comes with the module-cache work).
pub(crate) struct ModuleCache {
    stats: std::sync::Mutex<CacheStats>,
}

impl ModuleCache {
    pub(crate) fn new(_engine: &wasmtime::Engine, _config: &EngineConfig) -> Result<ModuleCache> {
        Ok(ModuleCache {
            stats: std::sync::Mutex::new(CacheStats::default()),
        })
    }

    pub(crate) fn get_or_compile(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
    ) -> Result<wasmtime::Module> {
        if let Ok(mut s) = self.stats.lock() {
            s.misses += 1;
        }
        compile(engine, wasm)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }
}

/// Compiles wasm bytes (binary only: text is refused so what is cached is what runs).
pub(crate) fn compile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<wasmtime::Module> {
    wasmtime::Module::from_binary(engine, wasm).map_err(|e| {
        ErrorKind::InvalidModule {
            reason: format!("{e:#}"),
        }
        .into()
    })
}
