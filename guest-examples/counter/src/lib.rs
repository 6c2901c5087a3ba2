//! A counter kept in the module's key-value storage (grant `kv`), so it outlives the
//! instance, and raw access to the store for host tests (binary keys, quotas, scans).
//!
//! Exports (input → output, postcard):
//!
//! - `increment(by: u64) -> u64`: adds `by` to the count stored under `b"count"`
//!   (postcard `u64`; 0 when absent) and returns the new count.
//! - `get(()) -> u64`: the count (0 when absent).
//! - `reset(()) -> ()`: deletes the count.
//! - `keys(prefix: Vec<u8>) -> Vec<Vec<u8>>`: every key starting with `prefix`, in
//!   order (a scan, page after page).
//! - `put((key, value): (Vec<u8>, Vec<u8>)) -> ()`: stores `value` under `key` as it is.
//! - `get_raw(key: Vec<u8>) -> Option<Vec<u8>>`: the value under `key`.
//! - `delete(key: Vec<u8>) -> bool`: deletes `key`; whether it existed.
//!
//! Failures of the store come back as the export's error with the host's code
//! (`QUOTA_EXCEEDED`, `STORAGE_FAILED`); a count that is not a postcard `u64` is
//! `INVALID_INPUT`, one that would overflow is an error 1000.

use membrane_guest::{Error, export, kv};

/// The key of the count.
const COUNT: &[u8] = b"count";

/// Adds `by` to the count; the new count.
#[export]
pub fn increment(by: u64) -> Result<u64, Error> {
    let count = kv::get_value::<u64>(COUNT)?
        .unwrap_or(0)
        .checked_add(by)
        .ok_or_else(|| Error::new(1000, "the count would overflow"))?;
    kv::put_value(COUNT, &count)?;
    Ok(count)
}

/// The count.
#[export]
pub fn get() -> Result<u64, Error> {
    Ok(kv::get_value::<u64>(COUNT)?.unwrap_or(0))
}

/// Deletes the count.
#[export]
pub fn reset() -> Result<(), Error> {
    kv::delete(COUNT)?;
    Ok(())
}

/// Every key starting with `prefix`, in order.
#[export]
pub fn keys(prefix: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
    Ok(kv::scan(&prefix)?
        .into_iter()
        .map(|(key, _value)| key)
        .collect())
}

/// Stores `value` under `key`.
#[export]
pub fn put(entry: (Vec<u8>, Vec<u8>)) -> Result<(), Error> {
    let (key, value) = entry;
    kv::put(&key, &value)
}

/// The value under `key`.
#[export]
pub fn get_raw(key: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
    kv::get(&key)
}

/// Deletes `key`; whether it existed.
#[export]
pub fn delete(key: Vec<u8>) -> Result<bool, Error> {
    kv::delete(&key)
}
