//! The executor-neutral part of the membrane host: what does not need wasmtime.
//!
//! - [`Error`], [`ErrorKind`] and their detail enums ([`TrapKind`], [`AbiViolation`],
//!   [`LimitKind`]): the one error type of every executor; [`HostError`], what a host
//!   function returns to its guest.
//! - [`Limits`]: what a guest may use (fuel, wall time, memory, tables, stack, call
//!   depth), enforced by every executor.
//! - [`memory`]: bounds-checked views of guest memory.
//! - [`protocol`]: the envelope-level call protocol over bytes of guest memory: writing
//!   an input envelope, reading and verifying an output (in place or copied), reading a
//!   host function's request and writing its response.
//! - [`imports`]: the ABI's function signatures and the table of host functions, keyed
//!   by `(import module, name)`.
//! - [`executor`]: the object-safe seam an executor implements (load, instantiate,
//!   call, cancel), and [`RuntimeModule`], a module as a runtime holds it.
//! - [`Runtime`]: many named modules, each with an [`InstancePolicy`] and its own fuel
//!   and timeout ([`ModuleSpec`]), called by `(module, function)`, hot-swapped and
//!   removed while calls run (`docs/runtime.md`).
//!
//! An executor (today `membrane-wasmtime`) runs the guest code and hands these functions
//! the regions of guest memory the ABI names (`docs/abi.md`). Host authors use
//! `membrane-host`, which re-exports this crate's public types. It builds for
//! `wasm32-unknown-unknown` (a host running inside wasm).
//!
//! # Example
//!
//! ```
//! use membrane_runtime::{memory::guest_region, protocol, AbiViolation, ErrorKind};
//! use membrane_codec::{Codec, CodecConfig};
//!
//! // A guest memory with an output envelope carrying "hi" at offset 8.
//! let codec = Codec::new(CodecConfig::default());
//! let mut memory = vec![0u8; 64];
//! let len = protocol::write_input(&codec, &mut memory[8..], b"hi")?;
//! let output = guest_region(&memory, 8, len, "output envelope")?;
//! assert_eq!(protocol::read_to_vec(&codec, output)?, b"hi");
//!
//! // A region outside guest memory is an ABI violation, never a panic.
//! let e = guest_region(&memory, 60, 8, "output envelope").unwrap_err();
//! assert!(matches!(e.kind(), ErrorKind::Abi(AbiViolation::BadPointer { .. })));
//! # Ok::<(), membrane_runtime::Error>(())
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `redb` | yes | [`services::kv::RedbKv`], the on-disk key-value store (redb) |

#![forbid(unsafe_code)]

mod error;
pub mod executor;
pub mod imports;
mod limits;
pub mod memory;
pub mod protocol;
mod runtime;
pub mod services;

pub use error::{AbiViolation, Error, ErrorKind, HostError, LimitKind, Result, TrapKind};
pub use executor::{ContentHash, LimitOverrides, RuntimeModule};
pub use limits::Limits;
pub use runtime::{
    CallContext, CallableId, DeliveryFailure, IdleReport, InstancePolicy, MAX_MODULE_NAME_LEN,
    ModuleCounters, ModuleInfo, ModuleSpec, Router, Runtime, RuntimeConfig, RuntimeLink,
    routed_error,
};
pub use services::kv::{KvError, KvLimits, KvStore, ScanPage};
pub use services::{
    BusError, BusLimits, Clock, Effect, EffectHandler, Grant, Grants, LogLevel, LogLimits,
    LogRecord, LogSink, LogSource, Message, NoEffects, OsRandom, RandomSource, ServiceBudget,
    ServiceImport, Services, SystemClock, TracingLog, testing,
};
