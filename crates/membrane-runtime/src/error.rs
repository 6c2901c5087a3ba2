//! The host's error type: one [`Error`] with a matchable [`ErrorKind`], and the
//! [`HostError`] a host function returns to its guest.

use membrane_codec::{DecodeError, EncodeError};
use membrane_types::ErrorCode;
use std::fmt;

/// Everything that can go wrong in membrane-host.
///
/// One pointer wide (a box), so `Result<T, Error>` stays small on the hot path.
///
/// Match on [`Error::kind`] to tell a guest-reported error from a trap, a panic, an ABI
/// violation, a limit or a host-side failure. Messages are lower case without a trailing
/// period.
pub struct Error {
    kind: Box<ErrorKind>,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The guest function returned an error envelope: the guest's own error.
    #[error("guest error {code}: {message}")]
    Guest {
        /// The guest's error code.
        code: ErrorCode,
        /// The guest's message.
        message: String,
    },
    /// The guest panicked; the message is the one its panic hook reported.
    #[error("guest panicked: {message}")]
    Panic {
        /// The panic message (at most `membrane_types::MAX_PANIC_MESSAGE` bytes).
        message: String,
    },
    /// The guest trapped (ran out of fuel or time, overflowed its stack, executed
    /// `unreachable`, ...). The instance is poisoned.
    #[error("guest trapped: {0}")]
    Trap(TrapKind),
    /// The guest broke the ABI (bad pointer, bad envelope, bad export). The instance is
    /// poisoned if it happened during a call.
    #[error("abi violation: {0}")]
    Abi(AbiViolation),
    /// A configured limit was hit.
    #[error("limit exceeded: {0}")]
    Limit(LimitKind),
    /// The module exports no callable function with this name.
    #[error("no function `{name}` in the module")]
    UnknownFunction {
        /// The name asked for.
        name: String,
    },
    /// The module imports functions the host does not provide.
    #[error("the module imports what the host does not provide: {}", imports.join(", "))]
    MissingImports {
        /// Each missing import as `module::name`.
        imports: Vec<String>,
    },
    /// An earlier call on this instance trapped or broke the ABI; the instance is not
    /// used again. Create a new instance (or call `Instance::reset`).
    #[error("instance is poisoned by an earlier failure ({reason}); create a new instance")]
    Poisoned {
        /// What poisoned it.
        reason: String,
    },
    /// The bytes are not a valid WebAssembly module, or it does not compile.
    #[error("invalid module: {reason}")]
    InvalidModule {
        /// Why.
        reason: String,
    },
    /// The engine configuration is invalid.
    #[error("invalid engine configuration: {reason}")]
    Config {
        /// Why.
        reason: String,
    },
    /// A host-side value did not serialize.
    #[error("input does not serialize: {0}")]
    Serialize(EncodeError),
    /// The guest's output is a valid envelope but does not deserialize into the
    /// requested type.
    #[error("output does not deserialize: {0}")]
    Deserialize(DecodeError),
    /// A file could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A failure inside the host (wasmtime or the operating system) not caused by the guest.
    #[error("host failure: {message}")]
    Host {
        /// What happened.
        message: String,
    },
    /// The runtime holds no module of this name (never added, or removed).
    #[error("no module `{name}` in the runtime")]
    UnknownModule {
        /// The name asked for.
        name: String,
    },
    /// The runtime already holds a module of this name.
    #[error("a module `{name}` is already in the runtime")]
    DuplicateModule {
        /// The name.
        name: String,
    },
    /// A module name the runtime does not accept (see `Runtime::add` for the rule).
    #[error("invalid module name `{name}`: {reason}")]
    InvalidModuleName {
        /// The name (cut after 64 characters).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A module's spec cannot be used (a pool of no instances, for example).
    #[error("invalid spec for module `{module}`: {reason}")]
    InvalidSpec {
        /// The module.
        module: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every instance of the module stayed busy for the whole wait bound
    /// (`RuntimeConfig::max_wait`); the call did not run. Nothing is poisoned.
    #[error("module `{module}` is busy: its {instances} instance(s) stayed in use for {waited:?}")]
    Busy {
        /// The module.
        module: String,
        /// How many instances it may have.
        instances: usize,
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// A call from a module to `module`, whose every instance is held by the same call
    /// chain (A→B→A with a `Persistent` A, or a pool all of whose instances are the
    /// chain's): waiting could never end, so the call fails at once. Nothing is
    /// poisoned.
    #[error(
        "module `{module}` is already in this call chain and has no other instance to serve it (a call never waits for its own chain: a `Pooled` policy with room for the chain's depth serves it)"
    )]
    Reentry {
        /// The module.
        module: String,
    },
    /// A call waited for an instance of `module` while its chain held an instance that
    /// the chains holding every instance of `module` wait for, in turn: a cycle of call
    /// chains each waiting for another (A→B on one thread while B→A runs on another, or
    /// a pool all of whose instances are held by chains that each want one more). None
    /// of them could go on before `max_wait`, so this one fails at once, and the others
    /// go on. The call did not run; nothing is poisoned (`docs/runtime.md`, "The
    /// locking rule").
    #[error(
        "deadlock: this call waits for module `{module}` ({instances} instance(s), all in use) in a cycle of {chains} call chains, each holding an instance that another of them waits for; it fails at once so that the others can go on (give the modules in the cycle more instances, or keep calls from crossing between them)"
    )]
    Deadlock {
        /// The module whose instance the call waited for.
        module: String,
        /// How many instances the module may have.
        instances: usize,
        /// How many call chains the cycle held, this one included.
        chains: usize,
    },
    /// No host callable of this id (never registered, or unregistered).
    #[error("no host callable with id {id:#018x}")]
    UnknownCallable {
        /// The id asked for.
        id: u64,
    },
    /// A module imports a host service it was not granted: refused by
    /// [`Runtime::add`](crate::Runtime::add) and [`Runtime::replace`](crate::Runtime::replace).
    #[error(
        "module `{module}` imports `{import}` but was not granted `{grant}` (add it to the Grants of its ModuleSpec)"
    )]
    NotGranted {
        /// The module.
        module: String,
        /// The import, as `module.name`.
        import: String,
        /// The grant it needs ([`Grant::name`](crate::Grant::name)).
        grant: &'static str,
    },
    /// The arguments of a dynamic call (a component's function called with values or
    /// WAVE text) do not fit its parameters: their number, or a parameter's type.
    #[error("invalid arguments for `{function}`: {reason}")]
    InvalidArguments {
        /// The function called.
        function: String,
        /// What does not fit, naming the parameter.
        reason: String,
    },
    /// The message bus refused a message of the host (a full queue, an unknown or
    /// mailbox-less receiver, a message too large, a bad channel name).
    #[error("{0}")]
    Bus(crate::services::BusError),
}

/// Why a guest trapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrapKind {
    /// The call used up its fuel (`Limits::fuel`).
    #[error("out of fuel")]
    OutOfFuel,
    /// The call ran past its wall-clock timeout (`Limits::timeout`).
    #[error("timeout")]
    Timeout,
    /// The call was cancelled through a `CancelHandle`.
    #[error("cancelled")]
    Cancelled,
    /// The wasm stack overflowed (`Limits::max_wasm_stack`).
    #[error("stack overflow")]
    StackOverflow,
    /// An access outside linear memory.
    #[error("out of bounds memory access")]
    MemoryOutOfBounds,
    /// `unreachable` executed (a Rust guest aborting, for example).
    #[error("unreachable executed")]
    Unreachable,
    /// Integer overflow, division by zero or a bad float-to-int conversion.
    #[error("arithmetic trap: {0}")]
    Arithmetic(&'static str),
    /// A bad indirect call (null entry, out-of-bounds table index, signature mismatch).
    #[error("bad indirect call: {0}")]
    IndirectCall(&'static str),
    /// Any other trap, with wasmtime's description.
    #[error("{0}")]
    Other(String),
}

/// How a guest broke the ABI of `docs/abi.md`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AbiViolation {
    /// The module declares another ABI version.
    #[error("module speaks abi version {module}, this host speaks version {host}")]
    VersionMismatch {
        /// The module's version.
        module: u32,
        /// The host's version.
        host: u32,
    },
    /// The module declares no ABI version: it was not built with membrane-guest.
    #[error("not a membrane module: no `__membrane_abi_v<N>` export")]
    NotMembrane,
    /// A required export is missing.
    #[error("missing export `{name}`")]
    MissingExport {
        /// The export's name.
        name: String,
    },
    /// An export has the wrong kind or signature.
    #[error("export `{name}` has type {found}, expected {expected}")]
    WrongExportType {
        /// The export's name.
        name: String,
        /// What the ABI asks for.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// A pointer/length from the guest lies outside its memory (or overflows).
    #[error("{what} at {ptr:#x}+{len} is outside guest memory of {memory_len} bytes")]
    BadPointer {
        /// What the region was for.
        what: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length.
        len: u32,
        /// The memory size at the time.
        memory_len: usize,
    },
    /// An envelope from the guest was rejected.
    #[error("bad {what}: {error}")]
    BadEnvelope {
        /// Which envelope.
        what: &'static str,
        /// The codec's rejection.
        error: DecodeError,
    },
    /// The allocation entry returned 0.
    #[error("the guest could not allocate {len} bytes for an envelope")]
    AllocFailed {
        /// The bytes asked for.
        len: u32,
    },
    /// An import the host provides has another type in the module.
    #[error("import `{import}` has type {found}, the host provides {expected}")]
    WrongImportType {
        /// The import as `module::name`.
        import: String,
        /// What the host provides.
        expected: &'static str,
        /// What the module imports.
        found: String,
    },
    /// A lifecycle hook returned the location of an envelope without the `ERROR` flag:
    /// a hook returns 0 for success, or an error envelope.
    #[error(
        "lifecycle hook `{hook}` returned an envelope without the error flag (a hook returns 0 or an error envelope)"
    )]
    HookResult {
        /// The hook's export name.
        hook: &'static str,
    },
    /// The module's start function called an import: host functions and intrinsics
    /// serve calls only once the instance exists.
    #[error("the start function called `{import}` before instantiation finished")]
    ImportDuringStart {
        /// The import as `module::name`.
        import: String,
    },
}

/// Which limit was hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitKind {
    /// The guest tried to grow its memory past `Limits::max_memory`.
    #[error("guest memory would exceed {limit} bytes")]
    Memory {
        /// The limit in bytes.
        limit: usize,
    },
    /// The guest tried to grow a table past `Limits::max_table_elements`.
    #[error("guest table would exceed {limit} elements")]
    Table {
        /// The limit in elements.
        limit: usize,
    },
    /// The module is larger than `EngineConfig::max_module_size` (checked before compiling).
    #[error("module of {size} bytes is larger than the limit of {limit}")]
    ModuleSize {
        /// The module's size; for a file whose size is not known before reading it (a
        /// pipe, a device), the bytes read before it was refused: the limit and one.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Host functions calling back into the guest nested deeper than allowed.
    #[error("calls nested more than {limit} deep")]
    CallDepth {
        /// The limit.
        limit: u32,
    },
    /// The module defines more linear memories than an instance may have (checked at
    /// load).
    #[error("module defines {count} memories, at most {limit} allowed")]
    Memories {
        /// How many the module defines.
        count: u32,
        /// The limit.
        limit: u32,
    },
    /// The module defines more tables than an instance may have (checked at load).
    #[error("module defines {count} tables, at most {limit} allowed")]
    Tables {
        /// How many the module defines.
        count: u32,
        /// The limit.
        limit: u32,
    },
    /// The pooling allocator has no free instance slot.
    #[error("no free instance slot in the pooling allocator")]
    Instances,
    /// The calling thread has too little native stack left to run guest code with
    /// `Limits::max_wasm_stack` (checked before any guest code runs; nothing is
    /// poisoned). Call from a thread with a larger stack, or lower `max_wasm_stack`.
    #[error(
        "the calling thread has {available} bytes of stack left, guest code needs {required} (max_wasm_stack and the host's reserve)"
    )]
    NativeStack {
        /// Bytes of stack left on the calling thread.
        available: usize,
        /// Bytes needed: `max_wasm_stack` and the host's reserve.
        required: usize,
    },
}

impl Error {
    /// What kind of failure this is.
    #[inline]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The kind, by value.
    pub fn into_kind(self) -> ErrorKind {
        *self.kind
    }

    /// Whether the guest trapped with this trap kind.
    pub fn is_trap(&self, trap: &TrapKind) -> bool {
        matches!(self.kind(), ErrorKind::Trap(t) if t == trap)
    }

    /// Whether this failure poisons the instance it happened in.
    #[inline]
    pub fn poisons(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Trap(_)
                | ErrorKind::Panic { .. }
                | ErrorKind::Abi(_)
                | ErrorKind::Limit(_)
                | ErrorKind::Host { .. }
        )
    }

    /// A copy of an error that poisons, to record as the fault of the outer call when
    /// it happened in a nested call. Kinds that do not poison become host failures
    /// carrying their message (they are never recorded as faults).
    #[cold]
    pub fn copy_of_fault(&self) -> Error {
        let kind = match self.kind() {
            ErrorKind::Trap(t) => ErrorKind::Trap(t.clone()),
            ErrorKind::Panic { message } => ErrorKind::Panic {
                message: message.clone(),
            },
            ErrorKind::Abi(v) => ErrorKind::Abi(v.clone()),
            ErrorKind::Limit(l) => ErrorKind::Limit(l.clone()),
            ErrorKind::Host { message } => ErrorKind::Host {
                message: message.clone(),
            },
            other => ErrorKind::Host {
                message: other.to_string(),
            },
        };
        kind.into()
    }

    /// A failure inside the host ([`ErrorKind::Host`]).
    #[cold]
    pub fn host(message: impl fmt::Display) -> Error {
        ErrorKind::Host {
            message: message.to_string(),
        }
        .into()
    }

    /// An ABI violation ([`ErrorKind::Abi`]).
    #[cold]
    pub fn abi(v: AbiViolation) -> Error {
        ErrorKind::Abi(v).into()
    }

    /// A guest region outside guest memory ([`AbiViolation::BadPointer`]).
    #[cold]
    pub fn bad_pointer(what: &'static str, ptr: u32, len: u32, memory_len: usize) -> Error {
        Error::abi(AbiViolation::BadPointer {
            what,
            ptr,
            len,
            memory_len,
        })
    }

    /// A rejected envelope from the guest ([`AbiViolation::BadEnvelope`]).
    #[cold]
    pub fn bad_envelope(what: &'static str, error: DecodeError) -> Error {
        Error::abi(AbiViolation::BadEnvelope { what, error })
    }

    /// A failed file operation ([`ErrorKind::Io`]).
    #[cold]
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        ErrorKind::Io {
            path: path.to_path_buf(),
            source,
        }
        .into()
    }
}

impl From<ErrorKind> for Error {
    #[cold]
    fn from(kind: ErrorKind) -> Error {
        Error {
            kind: Box::new(kind),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.kind, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.kind() {
            ErrorKind::Io { source, .. } => Some(source),
            ErrorKind::Deserialize(e) => Some(e),
            ErrorKind::Serialize(e) => Some(e),
            _ => None,
        }
    }
}

/// The result type of membrane-host.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error a host function returns; the guest receives it as an error envelope
/// (its wrapper returns `Err` with this code and message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError {
    /// The code (see `membrane_types::ErrorCode`).
    pub code: ErrorCode,
    /// The message.
    pub message: String,
}

impl HostError {
    /// A host error with this code and message.
    pub fn new(code: impl Into<ErrorCode>, message: impl Into<String>) -> HostError {
        HostError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<&str> for HostError {
    fn from(message: &str) -> HostError {
        HostError::new(ErrorCode::HOST_FUNCTION_FAILED, message)
    }
}

impl From<String> for HostError {
    fn from(message: String) -> HostError {
        HostError::new(ErrorCode::HOST_FUNCTION_FAILED, message)
    }
}

impl From<Error> for HostError {
    fn from(e: Error) -> HostError {
        match e.kind() {
            ErrorKind::Guest { code, message } => HostError::new(*code, message.clone()),
            _ => HostError::new(ErrorCode::HOST_FUNCTION_FAILED, e.to_string()),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for HostError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lower_case_without_trailing_period() {
        let errors: Vec<Error> = vec![
            ErrorKind::Trap(TrapKind::OutOfFuel).into(),
            ErrorKind::Panic {
                message: "boom".into(),
            }
            .into(),
            Error::abi(AbiViolation::VersionMismatch { module: 2, host: 1 }),
            ErrorKind::Limit(LimitKind::Memory { limit: 1 << 20 }).into(),
            ErrorKind::MissingImports {
                imports: vec!["env::a".into(), "env::b".into()],
            }
            .into(),
        ];
        for e in errors {
            let s = e.to_string();
            assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let e = Error::abi(AbiViolation::VersionMismatch { module: 7, host: 1 });
        assert_eq!(
            e.to_string(),
            "abi violation: module speaks abi version 7, this host speaks version 1"
        );
    }

    /// `docs/style.md` promises one pointer: the box keeps `Result<T, Error>` small.
    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(size_of::<Error>(), size_of::<usize>());
        assert_eq!(size_of::<Result<()>>(), size_of::<usize>());
    }
}
