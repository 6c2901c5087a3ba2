//! Trap classification: what ended a guest's code, told from wasmtime's error and what
//! the store saw (a recorded fault, the timer, a denied growth, a panic message).

use membrane_runtime::{AbiViolation, Error, ErrorKind, LimitKind, TrapKind};

use crate::store::StoreData;

/// The error for an allocation entry that returned 0.
#[cold]
pub(crate) fn alloc_failed<T>(data: &StoreData<T>, len: u32) -> Error {
    if data.limits.memory_denied {
        ErrorKind::Limit(LimitKind::Memory {
            limit: data.limits.max_memory,
        })
        .into()
    } else {
        Error::abi(AbiViolation::AllocFailed { len })
    }
}

/// Turns the error of a wasm call into a membrane error, using what the store saw.
#[cold]
pub(crate) fn classify<T>(data: &mut StoreData<T>, e: wasmtime::Error) -> Error {
    if let Some(fault) = data.fault.take() {
        return fault;
    }
    if let Some(kind) = data.timer.fired.take() {
        return ErrorKind::Trap(kind).into();
    }
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    let kind = match trap {
        Some(wasmtime::Trap::OutOfFuel) => Some(TrapKind::OutOfFuel),
        Some(wasmtime::Trap::StackOverflow) => Some(TrapKind::StackOverflow),
        Some(wasmtime::Trap::Interrupt) => Some(TrapKind::Timeout),
        _ => None,
    };
    if let Some(kind) = kind {
        return ErrorKind::Trap(kind).into();
    }
    // A refused `memory.grow` or `table.grow` returns -1 to the guest, which may handle
    // it and go on: the limit ended the call only if the guest then aborted the way a
    // Rust guest does when an allocation fails (`unreachable`, or a panic with Rust's
    // allocation-failure message). Any other ending is reported as what it is.
    let aborted = matches!(trap, Some(wasmtime::Trap::UnreachableCodeReached));
    let out_of_memory = match &data.panic {
        Some(message) => is_allocation_failure(message),
        None => aborted,
    };
    if data.limits.memory_denied && out_of_memory {
        return ErrorKind::Limit(LimitKind::Memory {
            limit: data.limits.max_memory,
        })
        .into();
    }
    if data.limits.table_denied && aborted && data.panic.is_none() {
        return ErrorKind::Limit(LimitKind::Table {
            limit: data.limits.max_table_elements,
        })
        .into();
    }
    if let Some(message) = data.panic.take() {
        return ErrorKind::Panic { message }.into();
    }
    use wasmtime::Trap as W;
    let kind = match trap {
        Some(W::MemoryOutOfBounds | W::HeapMisaligned) => TrapKind::MemoryOutOfBounds,
        Some(W::UnreachableCodeReached) => TrapKind::Unreachable,
        Some(W::IntegerOverflow) => TrapKind::Arithmetic("integer overflow"),
        Some(W::IntegerDivisionByZero) => TrapKind::Arithmetic("integer division by zero"),
        Some(W::BadConversionToInteger) => TrapKind::Arithmetic("invalid conversion to integer"),
        Some(W::TableOutOfBounds) => TrapKind::IndirectCall("table index out of bounds"),
        Some(W::IndirectCallToNull) => TrapKind::IndirectCall("uninitialized table element"),
        Some(W::BadSignature) => TrapKind::IndirectCall("signature mismatch"),
        Some(other) => TrapKind::Other(other.to_string()),
        None if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
            return ErrorKind::Limit(LimitKind::Instances).into();
        }
        None => return Error::host(format_args!("{e:#}")),
    };
    ErrorKind::Trap(kind).into()
}

/// Whether a panic message is the one Rust's allocation error handler panics with
/// (`memory allocation of N bytes failed`).
fn is_allocation_failure(message: &str) -> bool {
    message
        .strip_prefix("memory allocation of ")
        .is_some_and(|rest| rest.ends_with(" bytes failed"))
}
