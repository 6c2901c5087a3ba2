//! The wasmtime executor of membrane: engine, limits, metering, the compiled-module
//! cache, instances, calls and host functions.
//!
//! Host authors depend on `membrane-host`, which re-exports this crate's public types
//! beside the executor-neutral ones of `membrane-runtime` (errors, the envelope call
//! protocol). This crate runs the guest's code on wasmtime and hands the regions of
//! guest memory the ABI names (`docs/abi.md`) to `membrane-runtime`.
//!
//! - [`Engine`]: one per process, configured by [`EngineConfig`]; [`Engine::load`] makes
//!   a [`Module`].
//! - [`Module::prepare`] links [`HostFunctions`] into an [`InstancePre`], which makes
//!   [`Instance`]s.
//! - An [`InstancePre`] (or [`InstancePre::with_state`], a [`WithState`]) is a module
//!   for `membrane-runtime`'s `Runtime` of many modules.
//!
//! Layers point one way: `signature`, `trap`, `resources`, `native_stack` and `clock` at
//! the bottom; `config`, `cache` and `engine`; `module` (which adds [`Engine::load`]);
//! `store`; `call` (the call path) and `hook` (lifecycle hooks); `host_fn`; `instance`
//! (which adds [`Module::prepare`]); `seam` (`membrane-runtime`'s executor traits,
//! implemented by the types above).
//!
//! # Example
//!
//! ```no_run
//! use membrane_wasmtime::{Engine, EngineConfig, HostFunctions};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let module = engine.load_file("target/guests/echo.wasm")?;
//! let mut instance = module.prepare(&HostFunctions::new())?.instantiate(())?;
//! assert_eq!(instance.call_raw("echo", b"hi")?, b"hi");
//! # Ok::<(), membrane_runtime::Error>(())
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | *(always)* |    | wasmtime is built with Cranelift, the pooling allocator and parallel compilation only |
//! | `component` | no | WebAssembly components (module `component`, `docs/components.md`): wasmtime's component model, WAVE, WIT (wit-component), host functions (`component::ComponentImports`) |
//! | `wasi` | no | implies `component`; WASI preview 2 for components under a deny-by-default `component::WasiPolicy` |

#![deny(unsafe_code)]

mod cache;
mod call;
mod clock;
#[cfg(feature = "component")]
pub mod component;
mod config;
mod engine;
mod hook;
mod host_fn;
mod instance;
mod module;
mod native_stack;
mod resources;
mod runtime_imports;
mod seam;
mod signature;
mod store;
mod trap;

pub use cache::CacheStats;
pub use config::EngineConfig;
pub use engine::Engine;
pub use host_fn::{HostContext, HostFunctions};
pub use instance::{Instance, InstancePre};
pub use module::Module;
pub use seam::WithState;
pub use store::CancelHandle;
