//! The on-disk key-value backend: [`RedbKv`], every namespace in one redb database file.
//!
//! Layout (format 1, recorded in the `membrane_kv_meta` table):
//! - `membrane_kv_entries`: `tag(namespace) ++ key → value`, where `tag(ns)` is one byte
//!   holding `ns.len()` (at most 255) followed by the bytes of `ns`. The first byte says
//!   where the namespace ends, so a stored key splits back into exactly one
//!   `(namespace, key)`: namespaces never collide (`"a"`/`"bc"` is `01 61 62 63`,
//!   `"ab"`/`"c"` is `02 61 62 63`), and one namespace's keys are a contiguous run of
//!   the table in the order of their keys.
//! - `membrane_kv_usage`: `namespace → bytes used`, changed in the same write
//!   transaction as the entries, so it is exact across restarts and crashes.

use std::path::Path;
use std::sync::Arc;

use ::redb::{
    AccessGuard, Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition,
};

use super::{
    KvError, KvLimits, KvStore, Namespace, ScanPage, ScanRange, charge, check_key, entry_bytes,
    fill_page,
};

const ENTRIES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("membrane_kv_entries");
const USAGE: TableDefinition<'static, &str, u64> = TableDefinition::new("membrane_kv_usage");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("membrane_kv_meta");

/// The layout version this code reads and writes (see the module docs).
const FORMAT: u64 = 1;

/// The on-disk backend: an embedded [redb](https://docs.rs/redb) database in one file,
/// every namespace in it. Every `put` and `delete` is one write transaction committed
/// with fsync before it returns; reads see the last committed state and do not wait for
/// writers. Writes are serialized by the database, so each quota check is atomic with
/// its write.
///
/// Clones share the database: open a file once and hand clones to every runtime of the
/// process. A file can be open only once at a time: opening it while another process,
/// or another `RedbKv` of this process, holds it fails with [`KvError::Storage`] saying
/// the database is already open (redb locks the file).
///
/// ```
/// use membrane_runtime::services::kv::{KvLimits, KvStore, RedbKv};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("kv.redb");
///
/// let store = RedbKv::open(&path)?;
/// store.put("counter", b"hits", b"41", &KvLimits::default())?;
/// store.put("counter", b"hits", b"42", &KvLimits::default())?;
/// drop(store);
///
/// // What was put is there after reopening, usage included.
/// let store = RedbKv::open(&path)?;
/// assert_eq!(store.get("counter", b"hits")?, Some(b"42".to_vec()));
/// let page = store.scan("counter", b"", None, 100, 1 << 20)?;
/// assert_eq!(page.entries, [(b"hits".to_vec(), b"42".to_vec())]);
/// assert_eq!(store.usage("counter")?, 6);
/// # Ok::<(), membrane_runtime::services::kv::KvError>(())
/// ```
#[derive(Clone)]
pub struct RedbKv {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKv").finish_non_exhaustive()
    }
}

impl RedbKv {
    /// Opens the database at `path`, creating the file if it is missing.
    ///
    /// Fails with [`KvError::Storage`] if the file cannot be opened or created, is not a
    /// database of this format, or is already open (in another process, or as another
    /// `RedbKv` of this one: share one handle by cloning it).
    pub fn open(path: impl AsRef<Path>) -> Result<RedbKv, KvError> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => KvError::Storage(format!(
                "the key-value database {} is already open (by another process, or by \
                 another RedbKv of this one: share one handle by cloning it)",
                path.display()
            )),
            e => storage_failure(
                &format!("opening the key-value database {}", path.display()),
                e.into(),
            ),
        })?;
        let store = RedbKv { db: Arc::new(db) };
        store.init(path)?;
        Ok(store)
    }

    /// Creates the tables of a new database, or checks the format of an existing one.
    fn init(&self, path: &Path) -> Result<(), KvError> {
        let doing = format!("initializing the key-value database {}", path.display());
        let txn = self.db.begin_write().or_storage(&doing)?;
        {
            let mut meta = txn.open_table(META).or_storage(&doing)?;
            let format = meta.get("format").or_storage(&doing)?.map(|g| g.value());
            match format {
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(KvError::Storage(format!(
                        "the key-value database {} has format {other}, this version reads \
                         format {FORMAT}",
                        path.display()
                    )));
                }
                None => {
                    meta.insert("format", FORMAT).or_storage(&doing)?;
                }
            }
            txn.open_table(ENTRIES).or_storage(&doing)?;
            txn.open_table(USAGE).or_storage(&doing)?;
        }
        txn.commit().or_storage(&doing)
    }
}

/// `tag(namespace) ++ key`: the key of an entry in the `ENTRIES` table (module docs).
fn stored_key(namespace: Namespace<'_>, key: &[u8]) -> Vec<u8> {
    let name = namespace.0.as_bytes();
    let len = u8::try_from(name.len()).expect("a checked namespace has at most 255 bytes");
    let mut stored = Vec::with_capacity(1 + name.len() + key.len());
    stored.push(len);
    stored.extend_from_slice(name);
    stored.extend_from_slice(key);
    stored
}

/// Turns a redb failure into [`KvError::Storage`] saying what was being done.
trait OrStorage<T> {
    fn or_storage(self, doing: &str) -> Result<T, KvError>;
}

impl<T, E: Into<::redb::Error>> OrStorage<T> for Result<T, E> {
    fn or_storage(self, doing: &str) -> Result<T, KvError> {
        self.map_err(|e| storage_failure(doing, e.into()))
    }
}

/// A storage failure: what was being done, and redb's reason.
#[cold]
fn storage_failure(doing: &str, reason: ::redb::Error) -> KvError {
    KvError::Storage(format!("{doing}: {reason}"))
}

/// A key or value read from a table, without copying it; a key with its namespace tag
/// skipped.
struct Stored<'a> {
    guard: AccessGuard<'a, &'static [u8]>,
    skip: usize,
}

impl AsRef<[u8]> for Stored<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.guard.value()[self.skip..]
    }
}

impl KvStore for RedbKv {
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let namespace = Namespace::new(namespace)?;
        check_key(key)?;
        const DOING: &str = "reading a key-value entry";
        let txn = self.db.begin_read().or_storage(DOING)?;
        let entries = txn.open_table(ENTRIES).or_storage(DOING)?;
        let value = entries
            .get(stored_key(namespace, key).as_slice())
            .or_storage(DOING)?;
        Ok(value.map(|v| v.value().to_vec()))
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
        let stored = stored_key(namespace, key);
        const DOING: &str = "writing a key-value entry";
        // Dropping the transaction on an early return aborts it.
        let txn = self.db.begin_write().or_storage(DOING)?;
        {
            let mut entries = txn.open_table(ENTRIES).or_storage(DOING)?;
            let mut usage = txn.open_table(USAGE).or_storage(DOING)?;
            let used = usage
                .get(namespace.0)
                .or_storage(DOING)?
                .map_or(0, |g| g.value());
            let old = entries
                .get(stored.as_slice())
                .or_storage(DOING)?
                .map_or(0, |v| entry_bytes(key, v.value()));
            let used = charge(namespace, used, old, new, limits)?;
            entries.insert(stored.as_slice(), value).or_storage(DOING)?;
            usage.insert(namespace.0, used).or_storage(DOING)?;
        }
        txn.commit().or_storage(DOING)
    }

    fn delete(&self, namespace: &str, key: &[u8]) -> Result<bool, KvError> {
        let namespace = Namespace::new(namespace)?;
        check_key(key)?;
        const DOING: &str = "deleting a key-value entry";
        let txn = self.db.begin_write().or_storage(DOING)?;
        {
            let mut entries = txn.open_table(ENTRIES).or_storage(DOING)?;
            let freed = entries
                .remove(stored_key(namespace, key).as_slice())
                .or_storage(DOING)?
                .map(|v| entry_bytes(key, v.value()));
            let Some(freed) = freed else {
                // Nothing changed: the dropped transaction aborts, no commit, no fsync.
                return Ok(false);
            };
            let mut usage = txn.open_table(USAGE).or_storage(DOING)?;
            let used = usage
                .get(namespace.0)
                .or_storage(DOING)?
                .map_or(0, |g| g.value())
                .saturating_sub(freed);
            if used == 0 {
                usage.remove(namespace.0).or_storage(DOING)?;
            } else {
                usage.insert(namespace.0, used).or_storage(DOING)?;
            }
        }
        txn.commit().or_storage(DOING)?;
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
        // The range over stored keys: `tag ++ prefix` is a prefix like any other, and
        // its end is at most the end of the namespace's run.
        let prefix = stored_key(namespace, prefix);
        let after = after.map(|after| stored_key(namespace, after));
        let Some(range) = ScanRange::new(&prefix, after.as_deref()) else {
            return Ok(ScanPage::default());
        };
        const DOING: &str = "scanning key-value entries";
        let txn = self.db.begin_read().or_storage(DOING)?;
        let entries = txn.open_table(ENTRIES).or_storage(DOING)?;
        let skip = 1 + namespace.0.len();
        let page = entries
            .range(range.bounds())
            .or_storage(DOING)?
            .map(|entry| {
                let (key, value) = entry.or_storage(DOING)?;
                Ok((
                    Stored { guard: key, skip },
                    Stored {
                        guard: value,
                        skip: 0,
                    },
                ))
            });
        fill_page(page, limit, max_bytes)
    }

    fn usage(&self, namespace: &str) -> Result<u64, KvError> {
        let namespace = Namespace::new(namespace)?;
        const DOING: &str = "reading a key-value namespace's usage";
        let txn = self.db.begin_read().or_storage(DOING)?;
        let usage = txn.open_table(USAGE).or_storage(DOING)?;
        let used = usage.get(namespace.0).or_storage(DOING)?;
        Ok(used.map_or(0, |g| g.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, RedbKv) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbKv::open(dir.path().join("kv.redb")).unwrap();
        (dir, store)
    }

    /// The tag makes `(namespace, key)` → stored key one-to-one (the module docs' case).
    #[test]
    fn stored_keys_never_collide() {
        let stored = |ns, key| stored_key(Namespace::new(ns).unwrap(), key);
        assert_eq!(stored("a", b"bc"), b"\x01abc");
        assert_eq!(stored("ab", b"c"), b"\x02abc");
        let longest = "n".repeat(255);
        assert_eq!(stored(&longest, b"k")[0], 255);
    }

    /// Entries and usage survive closing and reopening the file.
    #[test]
    fn data_and_usage_survive_reopening() {
        let (dir, store) = temp_store();
        let limits = KvLimits::default();
        store.put("a", b"k1", b"one", &limits).unwrap();
        store.put("a", b"k2", b"two", &limits).unwrap();
        store.put("a", b"k2", b"2", &limits).unwrap();
        store.put("b", b"k1", b"other", &limits).unwrap();
        assert!(store.delete("a", b"k1").unwrap());
        drop(store);

        let store = RedbKv::open(dir.path().join("kv.redb")).unwrap();
        assert_eq!(store.get("a", b"k1").unwrap(), None);
        assert_eq!(store.get("a", b"k2").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.get("b", b"k1").unwrap(), Some(b"other".to_vec()));
        assert_eq!(store.usage("a").unwrap(), 3);
        assert_eq!(store.usage("b").unwrap(), 7);
        // The quota still counts what was stored before the restart.
        let tight = limits.max_namespace_bytes(4);
        assert!(matches!(
            store.put("a", b"k3", b"", &tight),
            Err(KvError::NamespaceFull {
                used: 3,
                needed: 2,
                limit: 4,
                ..
            })
        ));
    }

    /// A second open of a file that is open fails with a clear error; a clone shares it.
    #[test]
    fn a_file_open_twice_is_refused() {
        let (dir, store) = temp_store();
        let path = dir.path().join("kv.redb");
        let Err(KvError::Storage(message)) = RedbKv::open(&path) else {
            panic!("a second open of {} succeeded", path.display());
        };
        assert!(message.contains("is already open"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");

        let clone = store.clone();
        clone.put("m", b"k", b"v", &KvLimits::default()).unwrap();
        assert_eq!(store.get("m", b"k").unwrap(), Some(b"v".to_vec()));
        drop((store, clone));
        assert!(
            RedbKv::open(&path).is_ok(),
            "reopening after the last handle is dropped"
        );
    }

    #[test]
    fn failures_to_open_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("kv.redb");
        let Err(KvError::Storage(message)) = RedbKv::open(&path) else {
            panic!("opening in a missing directory succeeded");
        };
        assert!(
            message.starts_with("opening the key-value database"),
            "{message}"
        );
        assert!(message.contains("missing-dir"), "{message}");
    }

    /// A file that is not a redb database is refused, not overwritten.
    #[test]
    fn a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        std::fs::write(&path, [0x5a; 10_000]).unwrap();
        let Err(KvError::Storage(message)) = RedbKv::open(&path) else {
            panic!("a file of garbage was opened as a database");
        };
        assert!(message.contains("Not a redb database"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), [0x5a; 10_000]);
    }

    /// A file written in another layout version is refused, not misread.
    #[test]
    fn another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("format", 2).unwrap();
            txn.commit().unwrap();
        }
        let Err(KvError::Storage(message)) = RedbKv::open(&path) else {
            panic!("a database of format 2 was opened");
        };
        assert!(
            message.ends_with("has format 2, this version reads format 1"),
            "{message}"
        );
    }

    /// Puts racing from four threads never take the namespace past its quota, and the
    /// usage is the sum of the stored entries afterwards.
    #[test]
    fn concurrent_puts_never_exceed_the_quota() {
        let (_dir, store) = temp_store();
        // Each entry is 20 bytes: exactly 50 fit.
        let limits = KvLimits::default().max_namespace_bytes(1000);
        let accepted: usize = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4u8)
                .map(|t| {
                    let store = store.clone();
                    s.spawn(move || {
                        let mut accepted = 0;
                        for i in 0..30u8 {
                            let key = [b't', t, b'-', i, 0, 0, 0, 0, 0, 0];
                            match store.put("shared", &key, &[i; 10], &limits) {
                                Ok(()) => accepted += 1,
                                Err(KvError::NamespaceFull { .. }) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                        accepted
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        let page = store
            .scan("shared", b"", None, usize::MAX, usize::MAX)
            .unwrap();
        let stored: u64 = page.entries.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        assert_eq!(accepted, 50);
        assert_eq!(page.entries.len(), 50);
        assert_eq!(stored, 1000);
        assert_eq!(store.usage("shared").unwrap(), 1000);
    }
}
