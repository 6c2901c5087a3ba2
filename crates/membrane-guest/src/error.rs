//! The error a guest function returns, and the error a host function reports.

use alloc::string::String;
use core::fmt;
use membrane_types::ErrorCode;

/// An error with a code and a message, as carried by an error envelope.
///
/// Returned by exported functions (the host sees it as a guest error with this code and
/// message) and by host function wrappers (the host function's failure). Any type that
/// converts into `Error` can be an exported function's error type; strings convert with
/// code [`ErrorCode::GUEST_ERROR`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The error code ([`ErrorCode::APPLICATION_MIN`] and up are the application's).
    pub code: ErrorCode,
    /// A human-readable message.
    pub message: String,
}

impl Error {
    /// An error with this code and message.
    pub fn new(code: impl Into<ErrorCode>, message: impl Into<String>) -> Error {
        Error {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.code, self.message)
    }
}

impl core::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::new(ErrorCode::GUEST_ERROR, message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(ErrorCode::GUEST_ERROR, message)
    }
}
