//! The seam between the runtime and an executor: object-safe traits for loading a
//! module, instantiating it, calling a function with an input envelope and reading its
//! output, and cancelling a call.
//!
//! An executor crate (today `membrane-wasmtime`) implements them on its own types, so
//! that code above the executor (a runtime of many modules, a tool) can hold
//! `Box<dyn Executor>` and never name wasmtime. Typed calls and host functions with
//! host state stay on the executor's concrete types, where they are generic; the seam
//! carries payload bytes.

use crate::error::Result;

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
    fn call_envelope(
        &mut self,
        name: &str,
        input: &[u8],
        read: &mut dyn FnMut(&[u8]),
    ) -> Result<()>;

    /// A handle that stops this instance's running call from another thread.
    fn canceller(&self) -> Box<dyn Canceller>;

    /// Whether an earlier failure poisoned the instance.
    fn is_poisoned(&self) -> bool;
}

/// Stops the running call of one instance, from any thread.
pub trait Canceller: Send + Sync {
    /// Interrupts the instance's running call (none: nothing happens).
    fn cancel(&self);
}
