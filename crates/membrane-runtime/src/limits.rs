//! The limits every executor enforces on a guest, whatever runs it.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// What a guest may use: fuel and wall time per call, memory, tables, stack, and how
/// deep calls may nest. Every executor enforces them the same way (`docs/security.md`
/// lists where each fails); an executor's own settings (the wasmtime executor's
/// `EngineConfig`) sit beside them.
///
/// Fields are public and the struct is `#[non_exhaustive]`: read and assign fields
/// freely, build one from [`Limits::default`] with the chainable setters of the same
/// names, so that a new limit never breaks a build.
///
/// ```
/// use membrane_runtime::Limits;
/// use std::time::Duration;
///
/// let limits = Limits::default()
///     .timeout(Some(Duration::from_millis(200)))
///     .max_memory(16 << 20);
/// assert_eq!(limits.max_memory, 16 << 20);
/// assert_eq!(limits.fuel, Limits::default().fuel);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Fuel per call: roughly one unit per wasm instruction, and one per 16 bytes of
    /// the host's work for the guest (checksums, decompression). A call that uses it
    /// all traps with `TrapKind::OutOfFuel`. `None` turns metering off (slightly
    /// faster code, no deterministic bound). Default: `Some(1_000_000_000)`.
    pub fuel: Option<u64>,
    /// Wall-clock limit per call, enforced per instance: a timeout of one instance
    /// never interrupts another. `None`: no timeout (a cancel handle still works).
    /// Default: 5 s. Instantiation (the module's start function) runs under the same
    /// limit.
    pub timeout: Option<Duration>,
    /// Largest linear memory a guest may grow to, in bytes. Default: 256 MiB.
    pub max_memory: usize,
    /// Largest number of elements a guest table may grow to. Default: 100 000.
    pub max_table_elements: usize,
    /// Largest wasm stack a call may use, in bytes; deeper recursion traps with
    /// `TrapKind::StackOverflow`. Default: 512 KiB.
    pub max_wasm_stack: usize,
    /// How deep host functions may call back into guests (re-entrant or nested calls)
    /// before the call fails with `LimitKind::CallDepth`. Default: 16.
    pub max_call_depth: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: Some(1_000_000_000),
            timeout: Some(Duration::from_secs(5)),
            max_memory: 256 << 20,
            max_table_elements: 100_000,
            max_wasm_stack: 512 << 10,
            max_call_depth: 16,
        }
    }
}

/// Chainable setters for fields of a settings struct: `owner, field.path => setter: Type;`
/// makes `pub fn setter(mut self, value: Type) -> owner` setting `self.field.path`. Used
/// by [`Limits`] and by executors' settings that embed it (the wasmtime executor's
/// `EngineConfig`).
#[doc(hidden)]
#[macro_export]
macro_rules! __chainable_setters {
    ($owner:ident, $($first:ident $(. $rest:ident)* => $setter:ident: $ty:ty;)*) => {$(
        #[doc = concat!(
            "Sets `", stringify!($first) $(, ".", stringify!($rest))*, "` and returns the settings."
        )]
        #[must_use]
        pub fn $setter(mut self, value: $ty) -> $owner {
            self.$first $(. $rest)* = value;
            self
        }
    )*};
}

/// Chainable setters, one per field.
impl Limits {
    crate::__chainable_setters! { Limits,
        fuel => fuel: Option<u64>;
        timeout => timeout: Option<Duration>;
        max_memory => max_memory: usize;
        max_table_elements => max_table_elements: usize;
        max_wasm_stack => max_wasm_stack: usize;
        max_call_depth => max_call_depth: u32;
    }

    /// Checks that the limits can be enforced: a stack and a call depth above zero.
    /// An executor calls it when it is configured.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| -> Error {
            ErrorKind::Config {
                reason: reason.to_string(),
            }
            .into()
        };
        if self.max_wasm_stack == 0 {
            return Err(invalid("max_wasm_stack must be greater than zero"));
        }
        if self.max_call_depth == 0 {
            return Err(invalid("max_call_depth must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setters set their field and nothing else; `validate` names the bad field.
    #[test]
    fn setters_and_validation() {
        let limits = Limits::default()
            .fuel(None)
            .timeout(None)
            .max_memory(1)
            .max_table_elements(2)
            .max_wasm_stack(3)
            .max_call_depth(4);
        assert_eq!(
            (limits.fuel, limits.timeout, limits.max_memory),
            (None, None, 1)
        );
        assert_eq!(
            (
                limits.max_table_elements,
                limits.max_wasm_stack,
                limits.max_call_depth
            ),
            (2, 3, 4)
        );
        assert!(limits.validate().is_ok());
        for (bad, field) in [
            (Limits::default().max_wasm_stack(0), "max_wasm_stack"),
            (Limits::default().max_call_depth(0), "max_call_depth"),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Config { reason } if reason.contains(field)),
                "{e}"
            );
        }
    }
}
