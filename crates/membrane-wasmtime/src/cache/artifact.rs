//! What the compiled-artifact cache holds: compiled core modules and, with the
//! `component` feature, compiled components. One cache (one memory budget, one disk
//! directory, one set of counters) for both; a key says which kind it is for, so a
//! key of one kind never finds an artifact of the other.
//!
//! One of the crate's exceptions to `deny(unsafe_code)`: wasmtime's deserialization is
//! unsafe (it runs the machine code it is given), and the cache must call it; the disk
//! cache verifies every file before (`cache.rs`, `load_from_disk`).
#![allow(unsafe_code)]

use membrane_runtime::{ErrorKind, Result};

/// A compiled artifact of either kind, as the cache stores it.
#[derive(Clone)]
pub(crate) enum Compiled {
    Module(wasmtime::Module),
    #[cfg(feature = "component")]
    Component(wasmtime::component::Component),
}

/// A kind of compiled artifact the cache can hold.
pub(crate) trait Artifact: Clone + Sized {
    /// Fed into the cache key after the content hash. Empty for core modules (their
    /// keys predate components, so existing disk caches stay valid); components feed a
    /// word of their own, so no component key equals a module key.
    const KIND: &'static [u8];
    /// What the artifact is called in messages.
    const NAME: &'static str;

    /// Compiles wasm bytes (binary only: text is refused, so what is cached is what
    /// runs).
    fn compile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Self>;

    /// Reads an artifact that [`Artifact::serialize`] wrote.
    ///
    /// # Safety
    ///
    /// As wasmtime's `Module::deserialize`: `bytes` must be, unmodified, what
    /// `serialize` of this kind produced (the machine code in it runs).
    unsafe fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self>;

    /// The artifact's bytes, for the disk cache.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;

    /// Bytes it is charged in memory: its compiled code image (text, data and metadata
    /// of the artifact, about the size of the serialized artifact).
    fn code_size(&self) -> usize;

    fn into_compiled(self) -> Compiled;

    /// The artifact, if `compiled` is of this kind (always, for a key of this kind).
    fn from_compiled(compiled: &Compiled) -> Option<Self>;
}

impl Artifact for wasmtime::Module {
    const KIND: &'static [u8] = b"";
    const NAME: &'static str = "module";

    fn compile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Self> {
        wasmtime::Module::from_binary(engine, wasm).map_err(|e| {
            ErrorKind::InvalidModule {
                reason: format!("{e:#}"),
            }
            .into()
        })
    }

    unsafe fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract is wasmtime's.
        unsafe { wasmtime::Module::deserialize(engine, bytes) }
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }

    fn code_size(&self) -> usize {
        let image = self.image_range();
        image.end.addr() - image.start.addr()
    }

    fn into_compiled(self) -> Compiled {
        Compiled::Module(self)
    }

    fn from_compiled(compiled: &Compiled) -> Option<Self> {
        match compiled {
            Compiled::Module(m) => Some(m.clone()),
            #[cfg(feature = "component")]
            Compiled::Component(_) => None,
        }
    }
}

#[cfg(feature = "component")]
impl Artifact for wasmtime::component::Component {
    const KIND: &'static [u8] = b"component";
    const NAME: &'static str = "component";

    fn compile(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Self> {
        wasmtime::component::Component::from_binary(engine, wasm).map_err(|e| {
            ErrorKind::InvalidModule {
                reason: format!("not a valid component: {e:#}"),
            }
            .into()
        })
    }

    unsafe fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract is wasmtime's.
        unsafe { wasmtime::component::Component::deserialize(engine, bytes) }
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::component::Component::serialize(self)
    }

    fn code_size(&self) -> usize {
        let image = self.image_range();
        image.end.addr() - image.start.addr()
    }

    fn into_compiled(self) -> Compiled {
        Compiled::Component(self)
    }

    fn from_compiled(compiled: &Compiled) -> Option<Self> {
        match compiled {
            Compiled::Component(c) => Some(c.clone()),
            Compiled::Module(_) => None,
        }
    }
}
