//! The seam between the runtime and an executor: object-safe traits for loading a
//! module, instantiating it, calling a function with an input envelope and reading its
//! output, running its lifecycle hooks ([`Hook`]), and cancelling a call.
//!
//! An executor crate (today `membrane-wasmtime`) implements them on its own types, so
//! that code above the executor (a runtime of many modules, a tool) can hold
//! `Box<dyn Executor>` and never name wasmtime. Typed calls and host functions with
//! host state stay on the executor's concrete types, where they are generic; the seam
//! carries payload bytes.
//!
//! [`RuntimeModule`] is what a [`Runtime`](crate::Runtime) holds: a linked module that
//! describes itself (function names, [`ContentHash`]) and makes instances under the
//! per-module limits the runtime asks for ([`LimitOverrides`]).

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::runtime::{CallContext, RuntimeLink};

/// Something that compiles and checks modules: an engine.
pub trait Executor: Send + Sync {
    /// Loads a module from its wasm bytes (compiled, its ABI checked).
    fn load(&self, wasm: &[u8]) -> Result<Box<dyn LoadedModule>>;
}

/// A loaded module.
pub trait LoadedModule: Send + Sync {
    /// The names of the functions a host can call.
    fn function_names(&self) -> Vec<String>;

    /// Links the module with the ABI intrinsics only (no host functions) for making
    /// instances; fails if the module imports anything else.
    fn link(&self) -> Result<Box<dyn Instantiator>>;

    /// Links the module as [`LoadedModule::link`] does, as a module for a
    /// [`Runtime`](crate::Runtime) (instances with no host state).
    fn link_for_runtime(&self) -> Result<Box<dyn RuntimeModule>>;
}

/// A linked module that makes instances.
pub trait Instantiator: Send + Sync {
    /// A new instance with its own memory.
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>>;
}

/// An instance: guest state kept across calls, one call at a time.
pub trait GuestInstance: Send {
    /// Calls the guest function `name` with the input payload `input` (written into an
    /// input envelope) and hands `read` the output payload, verified, where it lies.
    ///
    /// `ctx` tells the instance about the call: the guest reads it
    /// (`membrane_guest::context()`), its depth counts against the instance's
    /// `max_call_depth` (a deeper call fails with `LimitKind::CallDepth` before any
    /// guest code runs, poisoning nothing), and the call stops at `ctx.deadline` if its
    /// own timeout does not stop it first. A call from a host outside a runtime passes
    /// [`CallContext::host`].
    fn call_envelope(
        &mut self,
        ctx: CallContext,
        name: &str,
        input: &[u8],
        read: &mut dyn FnMut(&[u8]),
    ) -> Result<()>;

    /// Calls the guest function `name` with `input` and returns a copy of the output
    /// payload. The default copies what [`GuestInstance::call_envelope`] hands over; an
    /// executor that can verify the output while copying it (one pass) overrides it.
    fn call_to_vec(&mut self, ctx: CallContext, name: &str, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.call_envelope(ctx, name, input, &mut |output| {
            out.extend_from_slice(output)
        })?;
        Ok(out)
    }

    /// Calls the function `call` names, written in WAVE (`add(1, 2)`), and returns its
    /// result in WAVE: how components are called by name (`docs/components.md`). The
    /// default, for executors of core modules, refuses: those are called with
    /// envelopes.
    fn call_wave(&mut self, ctx: CallContext, call: &str) -> Result<String> {
        let _ = ctx;
        Err(not_a_component(call.split('(').next().unwrap_or(call)))
    }

    /// Calls `function` with arguments and results of the executor's own types (for
    /// the wasmtime executor, a component's values): `call` holds them, and only the
    /// executor that made the instance knows its type (it downcasts it). The default,
    /// for executors of core modules, refuses as [`GuestInstance::call_wave`] does.
    fn call_values(
        &mut self,
        ctx: CallContext,
        function: &str,
        call: &mut dyn std::any::Any,
    ) -> Result<()> {
        let _ = (ctx, call);
        Err(not_a_component(function))
    }

    /// Runs the module's lifecycle hook `hook` (`docs/abi.md` §8) as a top-level call
    /// (the arena reset, the call's fuel and timeout; a trap poisons the instance as a
    /// call's would). `Ok(())` when the module does not export it; a hook's error
    /// envelope is [`ErrorKind::Guest`](crate::ErrorKind::Guest), as for calls.
    fn run_hook(&mut self, hook: Hook) -> Result<()>;

    /// A handle that stops this instance's running call from another thread.
    fn canceller(&self) -> Box<dyn Canceller>;

    /// Whether an earlier failure poisoned the instance.
    fn is_poisoned(&self) -> bool;
}

/// The error of a call with values or WAVE on a core module.
#[cold]
fn not_a_component(function: &str) -> crate::Error {
    crate::ErrorKind::InvalidArguments {
        function: function.trim().to_string(),
        reason: "a core module is called with envelope payloads (call, call_raw), not with values or WAVE".into(),
    }
    .into()
}

/// A lifecycle hook of a module (`docs/abi.md` §8): an optional export, run by a
/// [`Runtime`](crate::Runtime) on the instances it makes and drops
/// (`docs/runtime.md`, "Lifecycle").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `__membrane_start`: prepares a new instance, before it serves a call.
    Start,
    /// `__membrane_stop`: runs when an instance that started is dropped.
    Stop,
}

impl Hook {
    /// The hook's export name ([`START_EXPORT`](membrane_types::START_EXPORT),
    /// [`STOP_EXPORT`](membrane_types::STOP_EXPORT)).
    pub fn export_name(self) -> &'static str {
        match self {
            Hook::Start => membrane_types::START_EXPORT,
            Hook::Stop => membrane_types::STOP_EXPORT,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Start => "start",
            Hook::Stop => "stop",
        })
    }
}

/// Stops the running call of one instance, from any thread.
pub trait Canceller: Send + Sync {
    /// Interrupts the instance's running call (none: nothing happens).
    fn cancel(&self);
}

/// A linked module as a [`Runtime`](crate::Runtime) holds it: it names its functions,
/// tells its content hash, and makes instances whose calls run under per-module limits.
///
/// The executor provides the host state of each instance (the wasmtime executor:
/// `T::default()` for an `InstancePre<T>`, or the factory given to
/// `InstancePre::with_state`).
pub trait RuntimeModule: Send + Sync {
    /// The names of the functions a host can call.
    fn function_names(&self) -> Vec<String>;

    /// The module's content hash (blake3 of its wasm bytes).
    fn content_hash(&self) -> ContentHash;

    /// Every import of the module as `(import module, name)`: the runtime refuses a
    /// module that imports a service it was not granted.
    fn imports(&self) -> Vec<(String, String)>;

    /// Whether the module exports a message handler
    /// ([`MESSAGE_EXPORT`](membrane_types::MESSAGE_EXPORT) with the signature of a guest
    /// function), which [`GuestInstance::call_envelope`] calls by that name.
    fn handles_messages(&self) -> bool;

    /// An instantiator whose instances run every call (and their instantiation) under
    /// the executor's limits with `overrides` applied, and serve their guest's calls to
    /// the runtime (the `membrane_runtime` imports, `docs/abi.md` §8) through `link`.
    /// Checked once, here: fails with [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// when the executor cannot enforce an override (a timeout on an engine built
    /// without one, fuel on an engine that does not meter).
    fn limited(
        &self,
        overrides: &LimitOverrides,
        link: &RuntimeLink,
    ) -> Result<Box<dyn Instantiator>>;
}

/// A boxed runtime module (what [`LoadedModule::link_for_runtime`] returns) is one.
impl<M: RuntimeModule + ?Sized> RuntimeModule for Box<M> {
    fn function_names(&self) -> Vec<String> {
        (**self).function_names()
    }

    fn content_hash(&self) -> ContentHash {
        (**self).content_hash()
    }

    fn imports(&self) -> Vec<(String, String)> {
        (**self).imports()
    }

    fn handles_messages(&self) -> bool {
        (**self).handles_messages()
    }

    fn limited(
        &self,
        overrides: &LimitOverrides,
        link: &RuntimeLink,
    ) -> Result<Box<dyn Instantiator>> {
        (**self).limited(overrides, link)
    }
}

/// Per-module overrides of the per-call limits of [`Limits`](crate::Limits); `None`
/// keeps the executor's (the engine's) value.
///
/// `#[non_exhaustive]` with public fields and chainable setters of the same names, like
/// [`Limits`](crate::Limits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitOverrides {
    /// Fuel each call starts with, instead of the engine's (which must meter fuel).
    pub fuel: Option<u64>,
    /// Wall-clock limit of each call, instead of the engine's (which must have a
    /// timeout: its clock enforces it).
    pub timeout: Option<Duration>,
}

/// Chainable setters, one per field.
impl LimitOverrides {
    crate::__chainable_setters! { LimitOverrides,
        fuel => fuel: Option<u64>;
        timeout => timeout: Option<Duration>;
    }
}

/// The content hash of a module: blake3 of its wasm bytes. Displayed as 64 lower-case
/// hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_displays_as_hex() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x01;
        let text = ContentHash(bytes).to_string();
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("ab00"), "{text}");
        assert!(text.ends_with("0001"), "{text}");
    }
}
