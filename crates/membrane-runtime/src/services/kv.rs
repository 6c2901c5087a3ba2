//! Key-value storage (placeholder until the backends land).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use membrane_types::ErrorCode;

/// Quotas of a key-value namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KvLimits {
    /// Longest key.
    pub max_key_len: usize,
    /// Longest value.
    pub max_value_len: usize,
    /// Most bytes per namespace.
    pub max_namespace_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> KvLimits {
        KvLimits {
            max_key_len: 1024,
            max_value_len: 1024 * 1024,
            max_namespace_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Chainable setters, one per field.
impl KvLimits {
    crate::__chainable_setters! { KvLimits,
        max_key_len => max_key_len: usize;
        max_value_len => max_value_len: usize;
        max_namespace_bytes => max_namespace_bytes: u64;
    }
}

/// A kv failure.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// Key too large.
    #[error("key of {len} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// len
        len: usize,
        /// limit
        limit: usize,
    },
    /// Storage.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl KvError {
    /// The code.
    pub fn code(&self) -> ErrorCode {
        match self {
            KvError::KeyTooLarge { .. } => ErrorCode::QUOTA_EXCEEDED,
            KvError::Storage(_) => ErrorCode::STORAGE_FAILED,
        }
    }
}

/// One page of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// entries
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// more
    pub more: bool,
}

/// A key-value store.
pub trait KvStore: Send + Sync + 'static {
    /// get
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// put
    fn put(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        limits: &KvLimits,
    ) -> Result<(), KvError>;
    /// delete
    fn delete(&self, namespace: &str, key: &[u8]) -> Result<bool, KvError>;
    /// scan
    fn scan(
        &self,
        namespace: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ScanPage, KvError>;
    /// usage
    fn usage(&self, namespace: &str) -> Result<u64, KvError>;
}

/// In-memory.
#[derive(Clone, Default, Debug)]
pub struct MemoryKv {
    data: Arc<Mutex<BTreeMap<(String, Vec<u8>), Vec<u8>>>>,
}

impl MemoryKv {
    /// new
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }
}

impl KvStore for MemoryKv {
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .data
            .lock()
            .unwrap()
            .get(&(namespace.to_string(), key.to_vec()))
            .cloned())
    }
    fn put(&self, namespace: &str, key: &[u8], value: &[u8], _: &KvLimits) -> Result<(), KvError> {
        self.data
            .lock()
            .unwrap()
            .insert((namespace.to_string(), key.to_vec()), value.to_vec());
        Ok(())
    }
    fn delete(&self, namespace: &str, key: &[u8]) -> Result<bool, KvError> {
        Ok(self
            .data
            .lock()
            .unwrap()
            .remove(&(namespace.to_string(), key.to_vec()))
            .is_some())
    }
    fn scan(
        &self,
        namespace: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        _: usize,
    ) -> Result<ScanPage, KvError> {
        let data = self.data.lock().unwrap();
        let mut entries: Vec<_> = data
            .iter()
            .filter(|((n, k), _)| {
                n == namespace && k.starts_with(prefix) && after.is_none_or(|a| k.as_slice() > a)
            })
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(ScanPage { entries, more })
    }
    fn usage(&self, _: &str) -> Result<u64, KvError> {
        Ok(0)
    }
}
