//! The key-value service's storage: the [`KvStore`] trait a backend implements, the
//! quotas ([`KvLimits`]) and errors ([`KvError`]) every backend enforces alike, the
//! in-memory backend [`MemoryKv`] (the test double), and the on-disk backend
//! `RedbKv` (cargo feature `redb`).
//!
//! A store holds many namespaces, one per module; a namespace is a map from byte keys to
//! byte values, ordered bytewise. The checks and the paging rules live here, once, so the
//! backends differ only in where the bytes are kept.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use membrane_types::ErrorCode;

#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "redb")]
pub use self::redb::RedbKv;

/// The longest namespace name, in bytes. A namespace name is any non-empty UTF-8 string
/// of at most this many bytes (the runtime uses the module's name).
pub const MAX_NAMESPACE_LEN: usize = 255;

/// Quotas of a key-value namespace.
///
/// `#[non_exhaustive]` with public fields and chainable setters of the same names:
///
/// ```
/// use membrane_runtime::services::kv::KvLimits;
///
/// let limits = KvLimits::default().max_value_len(4096);
/// assert_eq!(limits.max_value_len, 4096);
/// assert_eq!(limits.max_key_len, 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KvLimits {
    /// The longest key, in bytes (keys are 1 to this many bytes). Default: 1024.
    pub max_key_len: usize,
    /// The longest value, in bytes (an empty value is allowed). Default: 1 MiB.
    pub max_value_len: usize,
    /// The most bytes a namespace may hold, counted as the sum of `key.len() +
    /// value.len()` over its entries. Default: 64 MiB.
    pub max_namespace_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> KvLimits {
        KvLimits {
            max_key_len: 1024,
            max_value_len: 1 << 20,
            max_namespace_bytes: 64 << 20,
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

    /// Checks a put's key and value against the size limits and returns the bytes the
    /// entry counts for. The quota needs the store and is checked by [`charge`].
    fn check_entry(&self, key: &[u8], value: &[u8]) -> Result<u64, KvError> {
        check_key(key)?;
        if key.len() > self.max_key_len {
            return Err(KvError::KeyTooLarge {
                len: key.len(),
                limit: self.max_key_len,
            });
        }
        if value.len() > self.max_value_len {
            return Err(KvError::ValueTooLarge {
                len: value.len(),
                limit: self.max_value_len,
            });
        }
        Ok(entry_bytes(key, value))
    }
}

/// Why a key-value operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// The key is longer than [`KvLimits::max_key_len`].
    #[error("key of {len} bytes is larger than the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key's length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The value is longer than [`KvLimits::max_value_len`].
    #[error("value of {len} bytes is larger than the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The key is empty (keys are 1 to [`KvLimits::max_key_len`] bytes).
    #[error("the key is empty (keys are at least one byte)")]
    EmptyKey,
    /// The put would take the namespace past [`KvLimits::max_namespace_bytes`]:
    /// `used + needed > limit`. A put that does not grow the namespace is never refused.
    #[error(
        "namespace `{namespace}` is full: it uses {used} of {limit} bytes and the write \
         needs {needed} more"
    )]
    NamespaceFull {
        /// The namespace.
        namespace: String,
        /// The bytes the namespace uses before the put.
        used: u64,
        /// The bytes the put adds: the new entry's key and value minus those of the entry
        /// it replaces.
        needed: u64,
        /// The namespace's quota in bytes.
        limit: u64,
    },
    /// The namespace name is empty, or longer than [`MAX_NAMESPACE_LEN`] bytes.
    #[error(
        "invalid namespace `{namespace}`: names are 1 to {MAX_NAMESPACE_LEN} bytes, this one \
         has {}", namespace.len()
    )]
    InvalidNamespace {
        /// The name given.
        namespace: String,
    },
    /// An I/O or database failure; the message says what failed and why.
    #[error("key-value storage failed: {0}")]
    Storage(String),
}

impl KvError {
    /// The error code a guest sees: `QUOTA_EXCEEDED` for a key, value or namespace over
    /// its limit, `INVALID_INPUT` for an empty key or an invalid namespace,
    /// `STORAGE_FAILED` for a storage failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            KvError::KeyTooLarge { .. }
            | KvError::ValueTooLarge { .. }
            | KvError::NamespaceFull { .. } => ErrorCode::QUOTA_EXCEEDED,
            KvError::EmptyKey | KvError::InvalidNamespace { .. } => ErrorCode::INVALID_INPUT,
            KvError::Storage(_) => ErrorCode::STORAGE_FAILED,
        }
    }
}

/// One page of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The page's entries as `(key, value)`, in key order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether entries matching the scan remain after this page: scan again with
    /// `after` set to the last key of this page.
    pub more: bool,
}

/// A key-value store holding many namespaces (one per module).
///
/// Implementations are safe to share between threads, and every successful `put` or
/// `delete` is durable when it returns (for `RedbKv`: committed with fsync; for
/// [`MemoryKv`]: for as long as the store lives). Every method checks the namespace name
/// first ([`KvError::InvalidNamespace`]).
///
/// ```
/// use membrane_runtime::services::kv::{KvLimits, KvStore, MemoryKv};
///
/// let store = MemoryKv::new();
/// let limits = KvLimits::default();
/// store.put("inventory", b"apple", b"3", &limits)?;
/// store.put("inventory", b"avocado", b"1", &limits)?;
/// store.put("inventory", b"banana", b"12", &limits)?;
/// assert_eq!(store.get("inventory", b"apple")?, Some(b"3".to_vec()));
///
/// // Page through the keys starting with "a", one entry at a time.
/// let page = store.scan("inventory", b"a", None, 1, usize::MAX)?;
/// assert_eq!(page.entries, [(b"apple".to_vec(), b"3".to_vec())]);
/// assert!(page.more);
/// let page = store.scan("inventory", b"a", Some(b"apple"), 1, usize::MAX)?;
/// assert_eq!(page.entries, [(b"avocado".to_vec(), b"1".to_vec())]);
/// assert!(!page.more);
///
/// assert_eq!(store.usage("inventory")?, 6 + 8 + 8);
/// # Ok::<(), membrane_runtime::services::kv::KvError>(())
/// ```
pub trait KvStore: Send + Sync + 'static {
    /// The value stored under `key`, if any. An empty key is refused
    /// ([`KvError::EmptyKey`]).
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Inserts or overwrites. Checks the key and value sizes against `limits`, and the
    /// namespace quota atomically with the write: two concurrent puts can never together
    /// exceed the quota. Replacing a value counts only the difference, and a put that
    /// does not grow the namespace is accepted even if it is over a quota lowered since.
    fn put(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        limits: &KvLimits,
    ) -> Result<(), KvError>;

    /// Deletes `key`; returns whether it existed. An empty key is refused
    /// ([`KvError::EmptyKey`]).
    fn delete(&self, namespace: &str, key: &[u8]) -> Result<bool, KvError>;

    /// The entries whose key starts with `prefix` (all of them for an empty prefix), in
    /// bytewise key order, strictly after `after` if given. A page holds at most `limit`
    /// entries and stops before its keys and values together would exceed `max_bytes`,
    /// but holds at least one entry if any matches, however large (so a `limit` of 0
    /// counts as 1, and paging always makes progress). [`ScanPage::more`] says whether
    /// matching entries remain after the page.
    fn scan(
        &self,
        namespace: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ScanPage, KvError>;

    /// The bytes the namespace uses, as counted for the quota (0 for an empty or unknown
    /// namespace).
    fn usage(&self, namespace: &str) -> Result<u64, KvError>;
}

/// A namespace name that was checked: 1 to [`MAX_NAMESPACE_LEN`] bytes.
#[derive(Clone, Copy, Debug)]
struct Namespace<'a>(&'a str);

impl<'a> Namespace<'a> {
    fn new(name: &'a str) -> Result<Namespace<'a>, KvError> {
        if name.is_empty() || name.len() > MAX_NAMESPACE_LEN {
            return Err(KvError::InvalidNamespace {
                namespace: name.to_string(),
            });
        }
        Ok(Namespace(name))
    }
}

/// Refuses an empty key.
fn check_key(key: &[u8]) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    Ok(())
}

/// The bytes an entry counts for in its namespace's usage.
fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64
}

/// The namespace's usage after a put of an entry of `new` bytes replacing one of `old`
/// bytes (0 if none), or [`KvError::NamespaceFull`] if that grows it past the quota.
fn charge(
    namespace: Namespace<'_>,
    used: u64,
    old: u64,
    new: u64,
    limits: &KvLimits,
) -> Result<u64, KvError> {
    let limit = limits.max_namespace_bytes;
    if new > old {
        let needed = new - old;
        if used.saturating_add(needed) > limit {
            return Err(KvError::NamespaceFull {
                namespace: namespace.0.to_string(),
                used,
                needed,
                limit,
            });
        }
    }
    // `old` is part of `used`, so this does not underflow unless the stored usage is
    // wrong; saturating keeps a damaged count from failing every later write.
    Ok(used.saturating_sub(old).saturating_add(new))
}

/// The smallest byte string greater than every string starting with `prefix`, or `None`
/// if there is none (the prefix is empty or all `0xff`). The strings starting with
/// `prefix` are exactly those in `prefix..prefix_end(prefix)`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// The keys a scan covers, in bytewise order: from `lower` up to `upper`.
#[derive(Debug, PartialEq, Eq)]
struct ScanRange {
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
}

impl ScanRange {
    /// The keys starting with `prefix`, strictly after `after` if given; `None` if there
    /// are none (so no backend is asked for a reversed range, which `BTreeMap` refuses
    /// with a panic).
    fn new(prefix: &[u8], after: Option<&[u8]>) -> Option<ScanRange> {
        let end = prefix_end(prefix);
        let lower = match after {
            Some(after) if after >= prefix => {
                if end.as_deref().is_some_and(|end| after >= end) {
                    return None;
                }
                Bound::Excluded(after.to_vec())
            }
            _ => Bound::Included(prefix.to_vec()),
        };
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        Some(ScanRange { lower, upper })
    }

    /// The bounds as a range over `[u8]`.
    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.lower.as_ref().map(Vec::as_slice),
            self.upper.as_ref().map(Vec::as_slice),
        )
    }
}

/// Fills a page from matching entries in key order, following the paging rules of
/// [`KvStore::scan`]. Reads one entry past the page (without copying it) to tell `more`.
fn fill_page<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    entries: impl Iterator<Item = Result<(K, V), KvError>>,
    limit: usize,
    max_bytes: usize,
) -> Result<ScanPage, KvError> {
    let limit = limit.max(1);
    let mut page = ScanPage::default();
    let mut bytes = 0usize;
    for entry in entries {
        let (key, value) = entry?;
        let (key, value) = (key.as_ref(), value.as_ref());
        let size = key.len().saturating_add(value.len());
        let full = page.entries.len() >= limit || bytes.saturating_add(size) > max_bytes;
        if full && !page.entries.is_empty() {
            page.more = true;
            break;
        }
        bytes = bytes.saturating_add(size);
        page.entries.push((key.to_vec(), value.to_vec()));
    }
    Ok(page)
}

/// The in-memory backend: every namespace in a `BTreeMap` behind one mutex. The test
/// double of the key-value service, and a store for hosts that need no persistence.
///
/// Clones share the data, so a test can keep a handle and look at what a guest stored
/// ([`MemoryKv::entries`]).
#[derive(Clone, Debug, Default)]
pub struct MemoryKv {
    namespaces: Arc<Mutex<BTreeMap<String, MemoryNamespace>>>,
}

/// One namespace of a [`MemoryKv`]: its entries and their byte count.
#[derive(Debug, Default)]
struct MemoryNamespace {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    used: u64,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }

    /// Every entry of `namespace` in key order (none for an unknown or invalid name): for
    /// host authors' tests.
    pub fn entries(&self, namespace: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.lock()
            .get(namespace)
            .map(|ns| {
                ns.entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The namespaces. A panic while the lock was held cannot have left them half
    /// changed (each operation checks first and changes the maps last), so a poisoned
    /// lock is taken over rather than failing every later call.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, MemoryNamespace>> {
        self.namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl KvStore for MemoryKv {
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let namespace = Namespace::new(namespace)?;
        check_key(key)?;
        Ok(self
            .lock()
            .get(namespace.0)
            .and_then(|ns| ns.entries.get(key).cloned()))
    }

    fn put(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        limits: &KvLimits,
    ) -> Result<(), KvError> {
        let namespace = Namespace::new(namespace)?;
        let new = limits.check_entry(key, value)?;
        let mut namespaces = self.lock();
        let (used, old) = match namespaces.get(namespace.0) {
            Some(ns) => (ns.used, ns.entries.get(key).map(|v| entry_bytes(key, v))),
            None => (0, None),
        };
        let used = charge(namespace, used, old.unwrap_or(0), new, limits)?;
        let ns = namespaces.entry(namespace.0.to_string()).or_default();
        ns.entries.insert(key.to_vec(), value.to_vec());
        ns.used = used;
        Ok(())
    }

    fn delete(&self, namespace: &str, key: &[u8]) -> Result<bool, KvError> {
        let namespace = Namespace::new(namespace)?;
        check_key(key)?;
        let mut namespaces = self.lock();
        let Some(ns) = namespaces.get_mut(namespace.0) else {
            return Ok(false);
        };
        let Some(value) = ns.entries.remove(key) else {
            return Ok(false);
        };
        ns.used = ns.used.saturating_sub(entry_bytes(key, &value));
        if ns.entries.is_empty() {
            namespaces.remove(namespace.0);
        }
        Ok(true)
    }

    fn scan(
        &self,
        namespace: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ScanPage, KvError> {
        let namespace = Namespace::new(namespace)?;
        let namespaces = self.lock();
        let (Some(ns), Some(range)) = (namespaces.get(namespace.0), ScanRange::new(prefix, after))
        else {
            return Ok(ScanPage::default());
        };
        let entries = ns.entries.range::<[u8], _>(range.bounds()).map(Ok);
        fill_page(entries, limit, max_bytes)
    }

    fn usage(&self, namespace: &str) -> Result<u64, KvError> {
        let namespace = Namespace::new(namespace)?;
        Ok(self.lock().get(namespace.0).map_or(0, |ns| ns.used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The behaviour every backend shares, one function per topic, each given a fresh
    /// store. Instantiated for every backend by `battery!`.
    mod battery {
        use super::super::*;

        const NS: &str = "module";

        fn put(store: &dyn KvStore, ns: &str, key: &[u8], value: &[u8]) {
            store.put(ns, key, value, &KvLimits::default()).unwrap();
        }

        fn scan_all(store: &dyn KvStore, ns: &str, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
            let page = store
                .scan(ns, prefix, None, usize::MAX, usize::MAX)
                .unwrap();
            assert!(!page.more);
            page.entries
        }

        fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<&[u8]> {
            entries.iter().map(|(k, _)| k.as_slice()).collect()
        }

        /// Checks the store's usage against the entries it holds.
        fn assert_usage_exact(store: &dyn KvStore, ns: &str) {
            let stored: u64 = scan_all(store, ns, b"")
                .iter()
                .map(|(k, v)| entry_bytes(k, v))
                .sum();
            assert_eq!(store.usage(ns).unwrap(), stored, "usage of {ns}");
        }

        pub(crate) fn get_put_overwrite_delete(store: &dyn KvStore) {
            assert_eq!(store.get(NS, b"k").unwrap(), None);
            put(store, NS, b"k", b"one");
            assert_eq!(store.get(NS, b"k").unwrap(), Some(b"one".to_vec()));
            put(store, NS, b"k", b"two!");
            assert_eq!(store.get(NS, b"k").unwrap(), Some(b"two!".to_vec()));
            put(store, NS, b"empty", b"");
            assert_eq!(store.get(NS, b"empty").unwrap(), Some(Vec::new()));
            assert!(store.delete(NS, b"k").unwrap());
            assert!(!store.delete(NS, b"k").unwrap());
            assert_eq!(store.get(NS, b"k").unwrap(), None);
            assert!(!store.delete("never-used", b"k").unwrap());
            assert_eq!(store.get(NS, b"").unwrap_err(), KvError::EmptyKey);
            assert_eq!(store.delete(NS, b"").unwrap_err(), KvError::EmptyKey);
            assert_usage_exact(store, NS);
        }

        /// Every combination of prefix, `after`, `limit` and `max_bytes` over binary keys
        /// (0x00 and 0xff bytes at every position) gives what a filter over the sorted
        /// entries gives, and paging with `after` visits each matching entry once.
        pub(crate) fn scan_matches_a_filter(store: &dyn KvStore) {
            let keys: [&[u8]; 12] = [
                b"\x00",
                b"\x00\xff",
                b"\x01",
                b"a",
                b"ab",
                b"abc",
                b"b",
                b"\xfe\xff",
                b"\xfe\xff\xff",
                b"\xff",
                b"\xff\x00",
                b"\xff\xff",
            ];
            // Inserted out of order, values of varied sizes.
            for (i, key) in keys.iter().enumerate().rev() {
                put(store, NS, key, &vec![b'v'; i % 4]);
            }
            put(store, "other", b"a", b"not mine");
            let sorted: Vec<(Vec<u8>, Vec<u8>)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.to_vec(), vec![b'v'; i % 4]))
                .collect();
            assert_eq!(scan_all(store, NS, b""), sorted);

            let prefixes: [&[u8]; 9] = [
                b"",
                b"\x00",
                b"a",
                b"ab",
                b"abcd",
                b"\xfe",
                b"\xfe\xff",
                b"\xff",
                b"\xff\xff",
            ];
            let afters: [Option<&[u8]>; 8] = [
                None,
                Some(b"\x00"),
                Some(b"a"),
                Some(b"aa"),
                Some(b"ab"),
                Some(b"\xfe\xff\xff"),
                Some(b"\xff"),
                Some(b"\xff\xff\xff"),
            ];
            for prefix in prefixes {
                for after in afters {
                    let matching: Vec<_> = sorted
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix))
                        .filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a))
                        .cloned()
                        .collect();
                    for (limit, max_bytes) in [(usize::MAX, usize::MAX), (2, usize::MAX), (5, 4)] {
                        check_paging(store, prefix, after, limit, max_bytes, &matching);
                    }
                }
            }
        }

        /// Pages through a scan and checks each page against the paging rules and the
        /// pages together against `matching`.
        fn check_paging(
            store: &dyn KvStore,
            prefix: &[u8],
            after: Option<&[u8]>,
            limit: usize,
            max_bytes: usize,
            matching: &[(Vec<u8>, Vec<u8>)],
        ) {
            let case = format!("prefix {prefix:x?} after {after:x?} limit {limit} max {max_bytes}");
            let mut seen = Vec::new();
            let mut after = after.map(<[u8]>::to_vec);
            loop {
                let page = store
                    .scan(NS, prefix, after.as_deref(), limit, max_bytes)
                    .unwrap();
                let rest = &matching[seen.len()..];
                assert!(page.entries.len() <= limit, "{case}");
                assert_eq!(page.entries, rest[..page.entries.len()], "{case}");
                assert_eq!(page.more, page.entries.len() < rest.len(), "{case}");
                if let Some((next_key, next_value)) = rest.get(page.entries.len()) {
                    // The page stopped for a reason: it is full, or the next entry would
                    // not fit in `max_bytes`.
                    let bytes: usize = page.entries.iter().map(|(k, v)| k.len() + v.len()).sum();
                    assert!(
                        page.entries.len() == limit
                            || bytes + next_key.len() + next_value.len() > max_bytes,
                        "{case}"
                    );
                }
                seen.extend(page.entries.iter().cloned());
                if !page.more {
                    break;
                }
                after = page.entries.last().map(|(k, _)| k.clone());
            }
            assert_eq!(seen, matching, "{case}");
        }

        pub(crate) fn scan_page_bounds(store: &dyn KvStore) {
            put(store, NS, b"k1", b"12345678"); // 10 bytes
            put(store, NS, b"k2", b"12345678"); // 10 bytes
            put(store, NS, b"k3", b"12"); // 4 bytes
            let page = |limit, max_bytes| store.scan(NS, b"k", None, limit, max_bytes).unwrap();
            let keys_of = |p: ScanPage| (keys(&p.entries).concat(), p.more);
            // Exactly at `max_bytes` fits; one byte less does not.
            assert_eq!(keys_of(page(10, 20)), (b"k1k2".to_vec(), true));
            assert_eq!(keys_of(page(10, 24)), (b"k1k2k3".to_vec(), false));
            assert_eq!(keys_of(page(10, 23)), (b"k1k2".to_vec(), true));
            assert_eq!(keys_of(page(10, 19)), (b"k1".to_vec(), true));
            // At least one entry, however small the page.
            assert_eq!(keys_of(page(10, 0)), (b"k1".to_vec(), true));
            assert_eq!(keys_of(page(0, usize::MAX)), (b"k1".to_vec(), true));
            assert_eq!(keys_of(page(3, usize::MAX)), (b"k1k2k3".to_vec(), false));
            // Nothing matching: an empty page with nothing more.
            assert_eq!(keys_of(page(0, 0)), (b"k1".to_vec(), true));
            assert_eq!(
                store.scan(NS, b"x", None, 10, 10).unwrap(),
                ScanPage::default()
            );
            assert_eq!(
                store.scan(NS, b"k", Some(b"k3"), 10, 10).unwrap(),
                ScanPage::default()
            );
            assert_eq!(
                store.scan("unknown", b"", None, 10, 10).unwrap(),
                ScanPage::default()
            );
        }

        pub(crate) fn quotas(store: &dyn KvStore) {
            let limits = KvLimits::default()
                .max_key_len(4)
                .max_value_len(8)
                .max_namespace_bytes(20);
            let put = |key: &[u8], value: &[u8]| store.put(NS, key, value, &limits);
            // Key and value sizes: at the limit is fine, one more byte is refused.
            assert_eq!(put(b"kkkk", b"12345678"), Ok(())); // 12 bytes used
            assert_eq!(
                put(b"kkkkk", b""),
                Err(KvError::KeyTooLarge { len: 5, limit: 4 })
            );
            assert_eq!(
                put(b"k", b"123456789"),
                Err(KvError::ValueTooLarge { len: 9, limit: 8 })
            );
            assert_eq!(put(b"", b"v"), Err(KvError::EmptyKey));
            // The namespace: exactly at the limit is fine, one byte more is refused.
            assert_eq!(put(b"a", b"1234567"), Ok(())); // 20 bytes used
            assert_eq!(store.usage(NS), Ok(20));
            assert_eq!(
                put(b"b", b""),
                Err(KvError::NamespaceFull {
                    namespace: NS.into(),
                    used: 20,
                    needed: 1,
                    limit: 20,
                })
            );
            // An overwrite counts the difference: shrink by 3, grow back by 3, not 4.
            assert_eq!(put(b"a", b"1234"), Ok(()));
            assert_eq!(store.usage(NS), Ok(17));
            assert_eq!(
                put(b"a", b"12345678"),
                Err(KvError::NamespaceFull {
                    namespace: NS.into(),
                    used: 17,
                    needed: 4,
                    limit: 20,
                })
            );
            assert_eq!(put(b"a", b"1234567"), Ok(()));
            assert_eq!(store.usage(NS), Ok(20));
            // Refused puts changed nothing.
            assert_eq!(store.get(NS, b"b"), Ok(None));
            assert_eq!(store.get(NS, b"a"), Ok(Some(b"1234567".to_vec())));
            // A delete frees what the entry used.
            assert_eq!(store.delete(NS, b"kkkk"), Ok(true));
            assert_eq!(store.usage(NS), Ok(8));
            assert_eq!(put(b"bbbb", b"12345678"), Ok(()));
            assert_eq!(store.usage(NS), Ok(20));
            // Under a quota lowered since, a put that does not grow the namespace is
            // accepted, one that grows it is not.
            let lowered = limits.max_namespace_bytes(10);
            assert_eq!(store.put(NS, b"a", b"7654321", &lowered), Ok(()));
            assert_eq!(store.put(NS, b"a", b"", &lowered), Ok(()));
            assert!(matches!(
                store.put(NS, b"a", b"12", &lowered),
                Err(KvError::NamespaceFull {
                    used: 13,
                    needed: 2,
                    limit: 10,
                    ..
                })
            ));
            // Another namespace has its own quota.
            assert_eq!(store.put("other", b"kkkk", b"12345678", &limits), Ok(()));
            assert_eq!(store.usage("other"), Ok(12));
            assert_usage_exact(store, NS);
        }

        pub(crate) fn namespaces_are_isolated(store: &dyn KvStore) {
            put(store, "a", b"same", b"in a");
            put(store, "b", b"same", b"in b");
            // The case a naive `namespace ++ key` encoding would confuse.
            put(store, "a", b"bc", b"a/bc");
            put(store, "ab", b"c", b"ab/c");
            put(store, "a\0", b"x", b"a0/x");
            assert_eq!(store.get("a", b"same").unwrap(), Some(b"in a".to_vec()));
            assert_eq!(store.get("b", b"same").unwrap(), Some(b"in b".to_vec()));
            assert_eq!(store.get("a", b"bc").unwrap(), Some(b"a/bc".to_vec()));
            assert_eq!(store.get("ab", b"c").unwrap(), Some(b"ab/c".to_vec()));
            assert_eq!(store.get("a", b"c").unwrap(), None);
            assert_eq!(store.get("ab", b"bc").unwrap(), None);
            assert_eq!(keys(&scan_all(store, "a", b"")), [&b"bc"[..], b"same"]);
            assert_eq!(keys(&scan_all(store, "ab", b"")), [b"c"]);
            assert_eq!(keys(&scan_all(store, "a\0", b"")), [b"x"]);
            assert_eq!(keys(&scan_all(store, "b", b"")), [b"same"]);
            // A scan from the very top of a namespace's key space stays in it.
            let page = store.scan("a", b"\xff", None, 10, 1000).unwrap();
            assert_eq!(page, ScanPage::default());
            let page = store.scan("a", b"", Some(b"\xff\xff"), 10, 1000).unwrap();
            assert_eq!(page, ScanPage::default());
            assert!(store.delete("a", b"same").unwrap());
            assert_eq!(store.get("b", b"same").unwrap(), Some(b"in b".to_vec()));
            for ns in ["a", "ab", "a\0", "b"] {
                assert_usage_exact(store, ns);
            }
            assert_eq!(store.usage("a").unwrap(), 6);
        }

        pub(crate) fn namespace_names_are_checked(store: &dyn KvStore) {
            let longest = "n".repeat(MAX_NAMESPACE_LEN);
            put(store, &longest, b"k", b"v");
            assert_eq!(store.get(&longest, b"k").unwrap(), Some(b"v".to_vec()));
            let limits = KvLimits::default();
            for bad in [String::new(), "n".repeat(MAX_NAMESPACE_LEN + 1)] {
                let invalid = Err(KvError::InvalidNamespace {
                    namespace: bad.clone(),
                });
                assert_eq!(store.get(&bad, b"k").map(drop), invalid);
                assert_eq!(store.put(&bad, b"k", b"v", &limits), invalid);
                assert_eq!(store.delete(&bad, b"k").map(drop), invalid);
                assert_eq!(store.scan(&bad, b"", None, 1, 1).map(drop), invalid);
                assert_eq!(store.usage(&bad).map(drop), invalid);
            }
        }

        pub(crate) fn usage_is_exact_after_mixed_writes(store: &dyn KvStore) {
            let limits = KvLimits::default();
            let mut expected = 0u64;
            for i in 0..40u8 {
                let key = [b'k', i % 7];
                let value = vec![i; usize::from(i % 5) * 3];
                let old = store.get(NS, &key).unwrap();
                expected -= old.map_or(0, |v| entry_bytes(&key, &v));
                if i % 3 == 0 {
                    store.delete(NS, &key).unwrap();
                } else {
                    store.put(NS, &key, &value, &limits).unwrap();
                    expected += entry_bytes(&key, &value);
                }
                assert_eq!(store.usage(NS).unwrap(), expected);
            }
            assert_usage_exact(store, NS);
            for (key, _) in scan_all(store, NS, b"") {
                store.delete(NS, &key).unwrap();
            }
            assert_eq!(store.usage(NS).unwrap(), 0);
        }
    }

    /// One test per battery function, for a backend made by `$make` (which returns
    /// whatever must outlive the store, and the store).
    macro_rules! battery {
        ($backend:ident, $make:expr) => {
            mod $backend {
                use super::*;

                battery!(@tests $make;
                    get_put_overwrite_delete,
                    scan_matches_a_filter,
                    scan_page_bounds,
                    quotas,
                    namespaces_are_isolated,
                    namespace_names_are_checked,
                    usage_is_exact_after_mixed_writes,
                );
            }
        };
        (@tests $make:expr; $($test:ident,)*) => {$(
            #[test]
            fn $test() {
                let (_keep, store) = $make;
                battery::$test(&store);
            }
        )*};
    }

    battery!(memory, ((), MemoryKv::new()));
    #[cfg(feature = "redb")]
    battery!(redb, {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbKv::open(dir.path().join("kv.redb")).unwrap();
        (dir, store)
    });

    /// Random operation sequences give the same results on every backend as on a model
    /// (a `BTreeMap` per namespace, with the limits and paging rules written out again).
    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Get(&'static str, Vec<u8>),
            Put(&'static str, Vec<u8>, Vec<u8>),
            Delete(&'static str, Vec<u8>),
            Scan(&'static str, Vec<u8>, Option<Vec<u8>>, usize, usize),
            Usage(&'static str),
        }

        #[derive(Debug, PartialEq, Eq)]
        enum Outcome {
            Value(Option<Vec<u8>>),
            Done,
            Existed(bool),
            Page(ScanPage),
            Used(u64),
        }

        /// Few namespaces and bytes, so that ops hit the same keys, prefixes end in 0xff,
        /// and the quota is often reached.
        fn op() -> impl Strategy<Value = Op> {
            let ns = prop::sample::select(vec!["a", "ab", "b"]);
            let byte = prop::sample::select(vec![0x00u8, 0x01, b'a', 0xfe, 0xff]);
            let key = prop::collection::vec(byte, 0..=3);
            let value = prop::collection::vec(any::<u8>(), 0..=6);
            prop_oneof![
                1 => (ns.clone(), key.clone()).prop_map(|(n, k)| Op::Get(n, k)),
                4 => (ns.clone(), key.clone(), value).prop_map(|(n, k, v)| Op::Put(n, k, v)),
                1 => (ns.clone(), key.clone()).prop_map(|(n, k)| Op::Delete(n, k)),
                2 => (ns.clone(), key.clone(), prop::option::of(key), 0..4usize, 0..16usize)
                    .prop_map(|(n, p, a, l, b)| Op::Scan(n, p, a, l, b)),
                1 => ns.prop_map(Op::Usage),
            ]
        }

        fn limits() -> KvLimits {
            KvLimits::default()
                .max_key_len(2)
                .max_value_len(5)
                .max_namespace_bytes(24)
        }

        #[derive(Default)]
        struct Model(BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>);

        impl Model {
            fn apply(&mut self, op: &Op) -> Result<Outcome, KvError> {
                let size = |k: &[u8], v: &[u8]| (k.len() + v.len()) as u64;
                let limits = limits();
                match op {
                    Op::Get(_, key) | Op::Delete(_, key) if key.is_empty() => {
                        Err(KvError::EmptyKey)
                    }
                    Op::Get(ns, key) => Ok(Outcome::Value(self.ns(ns).get(key).cloned())),
                    Op::Delete(ns, key) => Ok(Outcome::Existed(self.ns(ns).remove(key).is_some())),
                    Op::Put(_, key, _) if key.is_empty() => Err(KvError::EmptyKey),
                    Op::Put(_, key, _) if key.len() > limits.max_key_len => {
                        Err(KvError::KeyTooLarge {
                            len: key.len(),
                            limit: limits.max_key_len,
                        })
                    }
                    Op::Put(_, _, value) if value.len() > limits.max_value_len => {
                        Err(KvError::ValueTooLarge {
                            len: value.len(),
                            limit: limits.max_value_len,
                        })
                    }
                    Op::Put(ns, key, value) => {
                        let used = self.used(ns);
                        let old = self.ns(ns).get(key).map_or(0, |v| size(key, v));
                        let new = size(key, value);
                        if new > old && used + new - old > limits.max_namespace_bytes {
                            return Err(KvError::NamespaceFull {
                                namespace: ns.to_string(),
                                used,
                                needed: new - old,
                                limit: limits.max_namespace_bytes,
                            });
                        }
                        self.ns(ns).insert(key.clone(), value.clone());
                        Ok(Outcome::Done)
                    }
                    Op::Scan(ns, prefix, after, limit, max_bytes) => {
                        let matching = self.ns(ns).iter().filter(|(k, _)| {
                            k.starts_with(prefix) && after.as_ref().is_none_or(|a| *k > a)
                        });
                        let mut page = ScanPage::default();
                        let mut bytes = 0;
                        for (k, v) in matching {
                            let full = page.entries.len() >= (*limit).max(1)
                                || bytes + k.len() + v.len() > *max_bytes;
                            if full && !page.entries.is_empty() {
                                page.more = true;
                                break;
                            }
                            bytes += k.len() + v.len();
                            page.entries.push((k.clone(), v.clone()));
                        }
                        Ok(Outcome::Page(page))
                    }
                    Op::Usage(ns) => Ok(Outcome::Used(self.used(ns))),
                }
            }

            fn ns(&mut self, ns: &'static str) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
                self.0.entry(ns).or_default()
            }

            fn used(&mut self, ns: &'static str) -> u64 {
                self.ns(ns).iter().map(|(k, v)| entry_bytes(k, v)).sum()
            }
        }

        fn apply(store: &dyn KvStore, op: &Op) -> Result<Outcome, KvError> {
            match op {
                Op::Get(ns, key) => store.get(ns, key).map(Outcome::Value),
                Op::Put(ns, key, value) => {
                    store.put(ns, key, value, &limits()).map(|()| Outcome::Done)
                }
                Op::Delete(ns, key) => store.delete(ns, key).map(Outcome::Existed),
                Op::Scan(ns, prefix, after, limit, max_bytes) => store
                    .scan(ns, prefix, after.as_deref(), *limit, *max_bytes)
                    .map(Outcome::Page),
                Op::Usage(ns) => store.usage(ns).map(Outcome::Used),
            }
        }

        fn check(store: &dyn KvStore, ops: &[Op]) -> Result<(), TestCaseError> {
            let mut model = Model::default();
            for (i, op) in ops.iter().enumerate() {
                prop_assert_eq!(apply(store, op), model.apply(op), "op {} {:?}", i, op);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn memory_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
                check(&MemoryKv::new(), &ops)?;
            }
        }

        #[cfg(feature = "redb")]
        proptest! {
            // Each case opens a database file and commits with fsync: fewer cases.
            #![proptest_config(ProptestConfig::with_cases(48))]

            #[test]
            fn redb_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
                let dir = tempfile::tempdir().unwrap();
                let store = RedbKv::open(dir.path().join("kv.redb")).unwrap();
                check(&store, &ops)?;
            }
        }
    }

    #[test]
    fn prefix_end_is_the_first_string_past_the_prefix() {
        let check = |prefix: &[u8], end: Option<&[u8]>| {
            assert_eq!(prefix_end(prefix).as_deref(), end, "{prefix:x?}");
        };
        check(b"", None);
        check(b"\xff", None);
        check(b"\xff\xff", None);
        check(b"a", Some(b"b"));
        check(b"a\xff", Some(b"b"));
        check(b"a\xff\xff", Some(b"b"));
        check(b"\xfe\xff", Some(b"\xff"));
        check(b"\x00", Some(b"\x01"));
        check(b"ab\x00", Some(b"ab\x01"));
    }

    #[test]
    fn scan_ranges_are_never_reversed() {
        use Bound::{Excluded, Included, Unbounded};
        let check = |prefix: &[u8], after: Option<&[u8]>, range: Option<ScanRange>| {
            let got = ScanRange::new(prefix, after);
            assert_eq!(got, range, "{prefix:x?} after {after:x?}");
        };
        let range = |lower: Bound<&[u8]>, upper: Bound<&[u8]>| {
            Some(ScanRange {
                lower: lower.map(<[u8]>::to_vec),
                upper: upper.map(<[u8]>::to_vec),
            })
        };
        check(b"", None, range(Included(b""), Unbounded));
        check(b"a", None, range(Included(b"a"), Excluded(b"b")));
        check(b"a", Some(b"0"), range(Included(b"a"), Excluded(b"b")));
        check(b"a", Some(b"a"), range(Excluded(b"a"), Excluded(b"b")));
        check(
            b"a",
            Some(b"a\xff"),
            range(Excluded(b"a\xff"), Excluded(b"b")),
        );
        check(b"a", Some(b"b"), None);
        check(b"a", Some(b"c"), None);
        check(
            b"\xff",
            Some(b"\xff\xff"),
            range(Excluded(b"\xff\xff"), Unbounded),
        );
    }

    #[test]
    fn errors_have_codes_and_clear_messages() {
        let check = |e: KvError, code: ErrorCode, message: &str| {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.to_string(), message);
        };
        check(
            KvError::KeyTooLarge { len: 5, limit: 4 },
            ErrorCode::QUOTA_EXCEEDED,
            "key of 5 bytes is larger than the limit of 4 bytes",
        );
        check(
            KvError::ValueTooLarge { len: 9, limit: 8 },
            ErrorCode::QUOTA_EXCEEDED,
            "value of 9 bytes is larger than the limit of 8 bytes",
        );
        check(
            KvError::NamespaceFull {
                namespace: "m".into(),
                used: 20,
                needed: 3,
                limit: 21,
            },
            ErrorCode::QUOTA_EXCEEDED,
            "namespace `m` is full: it uses 20 of 21 bytes and the write needs 3 more",
        );
        check(
            KvError::EmptyKey,
            ErrorCode::INVALID_INPUT,
            "the key is empty (keys are at least one byte)",
        );
        check(
            KvError::InvalidNamespace {
                namespace: String::new(),
            },
            ErrorCode::INVALID_INPUT,
            "invalid namespace ``: names are 1 to 255 bytes, this one has 0",
        );
        check(
            KvError::Storage("disk on fire".into()),
            ErrorCode::STORAGE_FAILED,
            "key-value storage failed: disk on fire",
        );
    }

    #[test]
    fn limits_defaults_and_setters() {
        let limits = KvLimits::default();
        assert_eq!(
            (
                limits.max_key_len,
                limits.max_value_len,
                limits.max_namespace_bytes
            ),
            (1024, 1 << 20, 64 << 20)
        );
        let limits = limits
            .max_key_len(1)
            .max_value_len(2)
            .max_namespace_bytes(3);
        assert_eq!(
            (
                limits.max_key_len,
                limits.max_value_len,
                limits.max_namespace_bytes
            ),
            (1, 2, 3)
        );
    }

    /// Clones of a `MemoryKv` share its data; `entries` shows a namespace's entries.
    #[test]
    fn memory_clones_share_data() {
        let store = MemoryKv::new();
        let handle = store.clone();
        store.put("m", b"b", b"2", &KvLimits::default()).unwrap();
        store.put("m", b"a", b"1", &KvLimits::default()).unwrap();
        assert_eq!(
            handle.entries("m"),
            [
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(handle.entries("unknown"), []);
    }

    /// A panic while the lock is held does not make the store unusable.
    #[test]
    fn memory_survives_a_poisoned_lock() {
        let store = MemoryKv::new();
        store.put("m", b"k", b"v", &KvLimits::default()).unwrap();
        let poisoner = store.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock();
            panic!("poisoning the lock on purpose");
        })
        .join();
        assert!(store.namespaces.is_poisoned());
        assert_eq!(store.get("m", b"k").unwrap(), Some(b"v".to_vec()));
        store.put("m", b"k2", b"v", &KvLimits::default()).unwrap();
        assert_eq!(store.usage("m").unwrap(), 5);
    }
}
