//! Run membrane WebAssembly modules inside a host program.
//!
//! `membrane-host` loads modules built with `membrane-guest` (or anything speaking the
//! ABI of `docs/abi.md`) and calls their functions through the membrane envelope: one
//! copy in, one copy out, checksums verified at native speed, on top of typed wasmtime
//! calls. A hostile module cannot crash the host, run past its fuel or timeout, grow past
//! its memory limit, or read host memory; every failure is an [`Error`] with a
//! matchable [`ErrorKind`].
//!
//! - [`Engine`]: one per process, configured by [`EngineConfig`] (fuel, timeout, memory,
//!   stack, cache, pooling); shared by threads.
//! - [`Module`]: a compiled module whose ABI version and exports were checked at load.
//! - [`HostFunctions`]: typed closures guests may import, with per-instance host state.
//! - [`InstancePre`]: a module linked with its host functions, for fast instantiation.
//! - [`Instance`]: guest state kept across calls; [`Instance::call`] (typed, postcard),
//!   [`Instance::call_raw`] (bytes) and [`Instance::call_with`] (read the output in place).
//! - [`Runtime`]: many named modules, each with an [`InstancePolicy`] and its own fuel
//!   and timeout ([`ModuleSpec`]), called by `(module, function)`, hot-swapped and
//!   removed while calls run; an [`InstancePre`] (or [`InstancePre::with_state`]) is a
//!   module for it (`docs/runtime.md`).
//!
//! This crate is the one host authors depend on; it holds no code of its own. The
//! errors and the envelope call protocol come from `membrane-runtime` (no wasmtime),
//! the engine, modules and instances from `membrane-wasmtime`.
//!
//! # Example
//!
//! ```no_run
//! use membrane_host::{Engine, EngineConfig, HostError, HostFunctions};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let module = engine.load_file("target/guests/host_fns.wasm")?;
//!
//! let mut host = HostFunctions::<u32>::new();
//! host.register("add", |_ctx, (a, b): (u32, u32)| -> Result<u32, HostError> { Ok(a + b) });
//!
//! let pre = module.prepare(&host)?;
//! let mut instance = pre.instantiate(0)?;
//! let sum: u32 = instance.call("sum_via_host", &(2u32, 3u32))?;
//! assert_eq!(sum, 5);
//! # Ok::<(), membrane_host::Error>(())
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | *(always)* |    | the wasmtime executor (`membrane-wasmtime`), built with Cranelift, the pooling allocator and parallel compilation only |
//! | `redb` | yes | [`kv::RedbKv`], the on-disk key-value store of the runtime's services (redb) |
//! | `component` | no | `component`: WebAssembly components loaded, described and called with values or WAVE text (wasmtime's component model; opt-in, as it costs every core call a few instructions) |
//! | `wasi` | no | implies `component`; WASI preview 2 for components, deny-by-default: `component::WasiPolicy` grants each capability (environment, arguments, preopened directories, clocks, random, stdin) explicitly, stdout and stderr become bounded `tracing` lines, sockets are never linked (wasmtime-wasi, synchronous p2 only; it enables wasmtime's `async` feature) |

#![forbid(unsafe_code)]

pub use membrane_codec::CodecConfig;
/// The key-value stores: [`kv::RedbKv`] on disk, [`kv::MemoryKv`] in memory.
pub use membrane_runtime::services::kv;
pub use membrane_runtime::{
    AbiViolation, BusError, BusLimits, CallContext, CallableId, Clock, ContentHash,
    DeliveryFailure, Effect, EffectHandler, Error, ErrorKind, Grant, Grants, HostError, IdleReport,
    InstancePolicy, KvError, KvLimits, KvStore, LimitKind, LimitOverrides, Limits, LogLevel,
    LogLimits, LogRecord, LogSink, LogSource, MAX_MODULE_NAME_LEN, Message, ModuleCounters,
    ModuleInfo, ModuleSpec, NoEffects, OsRandom, RandomSource, Result, Runtime, RuntimeConfig,
    RuntimeModule, ScanPage, Services, SystemClock, TracingLog, TrapKind, testing,
};
pub use membrane_types::ErrorCode;
/// WebAssembly components (`docs/components.md`).
#[cfg(feature = "component")]
pub use membrane_wasmtime::component;
pub use membrane_wasmtime::{
    CacheStats, CancelHandle, Engine, EngineConfig, HostContext, HostFunctions, Instance,
    InstancePre, Module, WithState,
};

/// The README's and the guides' code, compiled (and run where possible) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
#[doc = include_str!("../../../docs/host-guide.md")]
#[doc = include_str!("../../../docs/guest-guide.md")]
#[doc = include_str!("../../../docs/runtime.md")]
#[cfg_attr(feature = "component", doc = include_str!("../../../docs/components.md"))]
pub struct DocsDoctests;
