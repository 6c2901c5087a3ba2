//! The engine: one per process, shared by threads; owns the epoch ticker and the cache.
//! It knows nothing of modules: [`Engine::load`] is in `module.rs`.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use membrane_runtime::{Error, ErrorKind, LimitKind, Result};

use crate::cache::{CacheStats, ModuleCache};
use crate::clock::{Clock, Ticker};
use crate::config::EngineConfig;

/// A wasmtime engine configured from an [`EngineConfig`], with its compiled-module
/// cache and its epoch ticker (the clock of per-call timeouts).
///
/// Cheap to clone (an `Arc`), `Send + Sync`: create one per process and share it. With a
/// timeout, the engine runs a ticker thread that advances the epoch every `epoch_tick`
/// while calls are active and sleeps while none is; it stops when the last clone (and
/// every module and instance made from it) is dropped. Without a timeout there is no
/// ticker thread.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    config: EngineConfig,
    cache: ModuleCache,
    /// The clock of timeouts, with its ticker thread; only when `timeout` is set.
    ticker: Option<Ticker>,
}

impl Engine {
    /// An engine with these settings.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let wasmtime =
            wasmtime::Engine::new(&config.to_wasmtime()?).map_err(|e| ErrorKind::Config {
                reason: format!("{e:#}"),
            })?;
        let cache = ModuleCache::new(&wasmtime, &config)?;
        let ticker = match config.limits.timeout {
            Some(_) => Some(Ticker::start(wasmtime.clone(), config.epoch_tick)?),
            None => None,
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                config,
                cache,
                ticker,
            }),
        })
    }

    /// The clock of timeouts (`None` without a timeout).
    #[inline]
    pub(crate) fn clock(&self) -> Option<&Arc<Clock>> {
        self.inner.ticker.as_ref().map(Ticker::clock)
    }

    /// The settings this engine was made with.
    #[inline]
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The underlying wasmtime engine, for embedders who need it (benchmarks, tools).
    #[inline]
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The compiled-module cache.
    #[inline]
    pub(crate) fn cache(&self) -> &ModuleCache {
        &self.inner.cache
    }

    /// Counters of the compiled-module cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Reads a `.wasm` file, never more than `max_module_size` bytes and one: a regular
    /// file larger than the limit is refused from its metadata before anything is read;
    /// a file whose metadata does not tell its size (a pipe, a device such as
    /// `/dev/zero`) is refused once one byte past the limit has been read.
    pub(crate) fn read_wasm(&self, path: &Path) -> Result<Vec<u8>> {
        let io = |e| Error::io(path, e);
        let file = File::open(path).map_err(io)?;
        // The metadata of the file opened, not of the path: the same file is read.
        let meta = file.metadata().map_err(io)?;
        let mut wasm = Vec::new();
        if meta.is_file() {
            let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
            self.check_size(size)?;
            wasm.try_reserve_exact(size)
                .map_err(|_| io(std::io::ErrorKind::OutOfMemory.into()))?;
        }
        let limit = self.inner.config.max_module_size;
        let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        file.take(bound).read_to_end(&mut wasm).map_err(io)?;
        self.check_size(wasm.len())?;
        Ok(wasm)
    }

    /// Refuses a module of `size` bytes over `max_module_size`.
    pub(crate) fn check_size(&self, size: usize) -> Result<()> {
        let limit = self.inner.config.max_module_size;
        if size > limit {
            return Err(ErrorKind::Limit(LimitKind::ModuleSize { size, limit }).into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a timeout there is no ticker thread at all; with one, the ticker does
    /// not tick while the engine is idle.
    #[test]
    fn no_ticker_without_timeout_and_no_tick_while_idle() {
        let engine = Engine::new(EngineConfig::default().timeout(None)).unwrap();
        assert!(engine.clock().is_none());
        let engine = Engine::new(EngineConfig::default()).unwrap();
        std::thread::sleep(crate::clock::IDLE * 5);
        assert_eq!(engine.clock().map(|c| c.ticks()), Some(0));
    }
}
