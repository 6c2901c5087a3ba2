//! Error codes carried by error envelopes.

use core::fmt;

/// The code at the start of an error envelope's payload (u32 little-endian).
///
/// Codes below [`ErrorCode::APPLICATION_MIN`] are reserved for membrane and listed as
/// associated constants here (and in `docs/wire-format.md`); codes from
/// `APPLICATION_MIN` up are free for applications to define.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// An unspecified failure. Prefer a precise code.
    pub const UNKNOWN: ErrorCode = ErrorCode(0);
    /// The input envelope or its payload could not be decoded (bad envelope, or the
    /// payload does not deserialize into the function's input type).
    pub const INVALID_INPUT: ErrorCode = ErrorCode(1);
    /// The output could not be encoded (for example it did not serialize).
    pub const ENCODE_FAILED: ErrorCode = ErrorCode(2);
    /// The named function, host function or module does not exist.
    pub const NOT_FOUND: ErrorCode = ErrorCode(3);
    /// A host function failed; the message says why.
    pub const HOST_FUNCTION_FAILED: ErrorCode = ErrorCode(4);
    /// The guest could not allocate memory for an envelope.
    pub const OUT_OF_MEMORY: ErrorCode = ErrorCode(5);
    /// The caller is not allowed to use this capability.
    pub const DENIED: ErrorCode = ErrorCode(6);
    /// A guest-defined failure without a more precise code (the default for guest
    /// functions returning an error type that carries no code).
    pub const GUEST_ERROR: ErrorCode = ErrorCode(7);
    /// A call to another module named a module the runtime does not hold.
    pub const UNKNOWN_MODULE: ErrorCode = ErrorCode(8);
    /// A call to another module named a function that module does not export.
    pub const UNKNOWN_FUNCTION: ErrorCode = ErrorCode(9);
    /// A call to a host callable named an id that is not registered (never was, or
    /// was unregistered).
    pub const UNKNOWN_CALLABLE: ErrorCode = ErrorCode(10);
    /// The called module trapped (the trap poisoned its instance, not the caller's).
    pub const CALLEE_TRAPPED: ErrorCode = ErrorCode(11);
    /// The called module panicked.
    pub const CALLEE_PANICKED: ErrorCode = ErrorCode(12);
    /// A limit stopped the call: the callee's fuel, memory or timeout, the caller's
    /// deadline, or the depth of the call chain.
    pub const LIMIT_EXCEEDED: ErrorCode = ErrorCode(13);
    /// Every instance of the called module stayed busy (or is held by this very call
    /// chain, which a call cannot wait for, or by chains waiting in a deadlock with
    /// it).
    pub const BUSY: ErrorCode = ErrorCode(14);
    /// The call failed for another reason (the callee broke the ABI, its instance could
    /// not be made, ...); the message says why.
    pub const CALL_FAILED: ErrorCode = ErrorCode(15);
    /// The service is only available to an instance run by a runtime.
    pub const NOT_IN_RUNTIME: ErrorCode = ErrorCode(16);
    /// A message was refused because the receiver's queue is full (backpressure: the
    /// message was not delivered; send it again later).
    pub const QUEUE_FULL: ErrorCode = ErrorCode(17);
    /// A key-value write was refused by a quota: key size, value size, or the total
    /// bytes of the module's namespace. Nothing was written.
    pub const QUOTA_EXCEEDED: ErrorCode = ErrorCode(18);
    /// A guest's debug assertion failed; the message is the assertion's.
    pub const ASSERTION_FAILED: ErrorCode = ErrorCode(19);
    /// The host's storage failed (an I/O error of the key-value store); the message
    /// says why. Nothing was written.
    pub const STORAGE_FAILED: ErrorCode = ErrorCode(20);
    /// The smallest code applications may define for themselves.
    pub const APPLICATION_MIN: ErrorCode = ErrorCode(1000);

    /// Whether this code is in the range reserved for membrane.
    #[inline]
    pub const fn is_reserved(self) -> bool {
        self.0 < Self::APPLICATION_MIN.0
    }

    /// The name of a reserved code, or `None` for application and unassigned codes.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "UNKNOWN",
            1 => "INVALID_INPUT",
            2 => "ENCODE_FAILED",
            3 => "NOT_FOUND",
            4 => "HOST_FUNCTION_FAILED",
            5 => "OUT_OF_MEMORY",
            6 => "DENIED",
            7 => "GUEST_ERROR",
            8 => "UNKNOWN_MODULE",
            9 => "UNKNOWN_FUNCTION",
            10 => "UNKNOWN_CALLABLE",
            11 => "CALLEE_TRAPPED",
            12 => "CALLEE_PANICKED",
            13 => "LIMIT_EXCEEDED",
            14 => "BUSY",
            15 => "CALL_FAILED",
            16 => "NOT_IN_RUNTIME",
            17 => "QUEUE_FULL",
            18 => "QUOTA_EXCEEDED",
            19 => "ASSERTION_FAILED",
            20 => "STORAGE_FAILED",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "ErrorCode({} {name})", self.0),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u32> for ErrorCode {
    #[inline]
    fn from(code: u32) -> ErrorCode {
        ErrorCode(code)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn reserved_codes_have_names_application_codes_do_not() {
        for code in 0..=20 {
            assert!(ErrorCode(code).name().is_some(), "{code}");
            assert!(ErrorCode(code).is_reserved());
        }
        assert_eq!(ErrorCode(21).name(), None);
        assert!(!ErrorCode(1000).is_reserved());
        assert_eq!(ErrorCode(1000).name(), None);
    }
}
