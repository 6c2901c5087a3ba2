//! Engine settings: limits, metering, caching and instance allocation.

use membrane_codec::CodecConfig;
use membrane_runtime::Limits;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of an [`Engine`](crate::Engine): the executor-neutral [`Limits`] every guest
/// runs under, and what only this wasmtime executor has (its epoch tick, compiled-code
/// caches, instance allocation). Every field has a documented default
/// ([`EngineConfig::default`]).
///
/// Fields are public and the struct is `#[non_exhaustive]`, so a new setting never
/// breaks a build: start from the default and chain setters (one per field; those of
/// the limits set `limits`), or assign fields.
///
/// ```
/// use membrane_wasmtime::EngineConfig;
/// use std::time::Duration;
///
/// let config = EngineConfig::default()
///     .timeout(Some(Duration::from_millis(200)))
///     .max_memory(16 << 20)
///     .pooling(true);
/// assert_eq!(config.limits.max_memory, 16 << 20);
///
/// let mut config = config;
/// config.limits.fuel = None;
/// config.cache_size = 0;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// What a guest may use: fuel and wall time per call, memory, tables, stack, call
    /// depth. Default: [`Limits::default`]. Timeouts are enforced with epoch
    /// interruption, at the granularity of [`EngineConfig::epoch_tick`].
    pub limits: Limits,
    /// How often the engine's epoch ticker runs: the granularity of timeouts and
    /// cancellation. Default: 1 ms.
    pub epoch_tick: Duration,
    /// Make every NaN produced by float instructions canonical, so results are
    /// bit-for-bit deterministic across machines (at some cost in float-heavy code).
    /// Default: `false`.
    pub nan_canonicalization: bool,
    /// Budget of the in-memory compiled-module cache, in bytes of compiled code (each
    /// module is charged the size of its compiled code image); least recently used
    /// modules are evicted past it, and a module larger than the whole budget is
    /// compiled but not kept. `0` turns the memory cache off. Default: 256 MiB.
    pub cache_size: usize,
    /// Directory of the on-disk cache of precompiled modules, created if missing (mode
    /// 0700 on Unix). Whoever can write into it can make the host run arbitrary code:
    /// give it the same protection as the program's binary. Files are verified before
    /// use; a file that fails is reported through `tracing` and recompiled. `None` (the
    /// default) keeps compiled modules in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Budget of the on-disk cache in bytes: after each write, the oldest-used artifact
    /// files (by modification time, renewed on each disk hit) are removed until the
    /// directory's artifacts fit; an artifact larger than the whole budget is not
    /// written. Default: 1 GiB.
    pub disk_cache_size: u64,
    /// Virtual address space reserved for each linear memory, in bytes (wasmtime's
    /// `memory_reservation`). With the default 4 GiB plus guard pages, bounds checks
    /// are done by the MMU and cost nothing; a smaller reservation saves address
    /// space at the cost of explicit checks. Default: 4 GiB.
    pub static_memory_bound: u64,
    /// Use wasmtime's pooling instance allocator: slots are reserved up front, making
    /// fresh instances much cheaper. Default: `false`.
    pub pooling: bool,
    /// With `pooling`, the number of instances that may exist at once. Default: 256.
    pub pooling_max_instances: u32,
    /// Largest module accepted, in bytes, checked before compiling. Default: 64 MiB.
    pub max_module_size: usize,
    /// Envelope settings for calls: compression of inputs and the largest decompressed
    /// output accepted. Default: [`CodecConfig::default`] (no compression, 64 MiB).
    pub codec: CodecConfig,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            limits: Limits::default(),
            epoch_tick: Duration::from_millis(1),
            nan_canonicalization: false,
            cache_size: 256 << 20,
            cache_dir: None,
            disk_cache_size: 1 << 30,
            static_memory_bound: 4 << 30,
            pooling: false,
            pooling_max_instances: 256,
            max_module_size: 64 << 20,
            codec: CodecConfig::default(),
        }
    }
}

/// A chainable setter for each field, and for each field of its `limits`.
impl EngineConfig {
    membrane_runtime::__chainable_setters! { EngineConfig,
        limits => limits: Limits;
        epoch_tick => epoch_tick: Duration;
        nan_canonicalization => nan_canonicalization: bool;
        cache_size => cache_size: usize;
        cache_dir => cache_dir: Option<PathBuf>;
        disk_cache_size => disk_cache_size: u64;
        static_memory_bound => static_memory_bound: u64;
        pooling => pooling: bool;
        pooling_max_instances => pooling_max_instances: u32;
        max_module_size => max_module_size: usize;
        codec => codec: CodecConfig;
        limits.fuel => fuel: Option<u64>;
        limits.timeout => timeout: Option<Duration>;
        limits.max_memory => max_memory: usize;
        limits.max_table_elements => max_table_elements: usize;
        limits.max_wasm_stack => max_wasm_stack: usize;
        limits.max_call_depth => max_call_depth: u32;
    }
}

impl EngineConfig {
    /// The wasmtime configuration these settings ask for.
    pub(crate) fn to_wasmtime(&self) -> membrane_runtime::Result<wasmtime::Config> {
        let invalid = |reason: &str| -> membrane_runtime::Error {
            membrane_runtime::ErrorKind::Config {
                reason: reason.to_string(),
            }
            .into()
        };
        self.limits.validate()?;
        if self.epoch_tick.is_zero() {
            return Err(invalid("epoch_tick must be greater than zero"));
        }
        let mut c = wasmtime::Config::new();
        c.consume_fuel(self.limits.fuel.is_some())
            .epoch_interruption(true)
            .max_wasm_stack(self.limits.max_wasm_stack)
            .cranelift_nan_canonicalization(self.nan_canonicalization)
            .memory_reservation(self.static_memory_bound)
            .parallel_compilation(true);
        if self.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            // The pool's limits follow the engine's, so that a module gets the same
            // answer from either allocator (`resources::check` refuses at load what
            // does not fit).
            use crate::resources::{MAX_MEMORIES, MAX_TABLES};
            pool.total_core_instances(self.pooling_max_instances)
                .total_memories(self.pooling_max_instances.saturating_mul(MAX_MEMORIES))
                .total_tables(self.pooling_max_instances.saturating_mul(MAX_TABLES))
                .max_memories_per_module(MAX_MEMORIES)
                .max_tables_per_module(MAX_TABLES)
                .max_memory_size(self.limits.max_memory)
                .table_elements(self.limits.max_table_elements);
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        Ok(c)
    }
}
