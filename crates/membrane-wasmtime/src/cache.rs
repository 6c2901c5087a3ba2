//! The compiled-module cache: in memory (bounded, least recently used out first, one
//! compilation per module however many threads ask) and optionally on disk.
//!
//! A module is found by its [`Key`]: blake3 over the engine's fingerprint (wasmtime's
//! `precompile_compatibility_hash`: target, compiler flags, tunables, wasm features,
//! wasmtime version) and the wasm bytes' own blake3 (the module's content hash, kept by
//! the module: a load hashes its bytes once). Two engines that would compile the same bytes
//! to interchangeable code share keys, in this process or another; any setting that
//! changes the code changes the key.
//!
//! Only modules that pass a check the engine hands in (the ABI check) are kept: a module
//! that compiles but is refused takes no room in memory or on disk.

mod artifact;
mod disk;

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::config::EngineConfig;
pub(crate) use artifact::Artifact;
use artifact::Compiled;
use disk::{DiskCache, Lookup};
use membrane_runtime::{Error, ErrorKind, Result};

/// Counters of the compiled-module cache ([`Engine::cache_stats`](crate::Engine::cache_stats)).
///
/// A load is answered in exactly one of four ways: `memory_hits`, `disk_hits`, `waited`
/// or `misses` (a compilation). The `disk_*` counters stay at zero without a
/// `cache_dir`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Loads answered from memory.
    pub memory_hits: u64,
    /// Loads answered from a verified file of the disk cache.
    pub disk_hits: u64,
    /// Loads that compiled the module (failed compilations included).
    pub misses: u64,
    /// Loads that found the same module being compiled (or read from disk) by another
    /// thread and waited for its result instead of compiling it again.
    pub waited: u64,
    /// Modules dropped from memory to stay within `cache_size`.
    pub evictions: u64,
    /// Modules held in memory now.
    pub memory_entries: u64,
    /// Bytes of compiled code held in memory now (what `cache_size` bounds).
    pub memory_bytes: u64,
    /// Artifact files written to the disk cache.
    pub disk_writes: u64,
    /// Disk cache files refused by the integrity check (not a regular file, of a size
    /// no artifact of the module can have, empty, truncated, corrupted, foreign, or for
    /// other engine settings): never deserialized, recompiled and replaced.
    pub disk_rejects: u64,
    /// Disk cache files that passed the integrity check but that wasmtime refused as
    /// incompatible with this engine: recompiled and replaced.
    pub disk_incompatible: u64,
    /// Disk cache files this process removed to stay within `disk_cache_size`.
    pub disk_evictions: u64,
    /// Disk cache operations that failed with an i/o error (the load went on without
    /// the disk cache).
    pub disk_errors: u64,
}

/// What a module is cached under: blake3 of the engine fingerprint and the module's
/// content hash (blake3 of its wasm bytes, which the module keeps: one pass over the
/// bytes per load).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key(pub(crate) [u8; 32]);

impl Key {
    /// The key in lower-case hex (the disk file name).
    pub(crate) fn hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// Feeds a [`Hash`] value into blake3, so that wasmtime's compatibility hash becomes a
/// fingerprint that is the same in every process (std's `DefaultHasher` promises
/// nothing across Rust versions).
struct Blake3Hasher(blake3::Hasher);

impl std::hash::Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0.finalize().as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

/// Domain of the fingerprint and key derivations; bump with anything that changes what
/// a key stands for.
const KEY_CONTEXT: &str = "membrane-host 2025 compiled module cache key v2";

/// A module's content hash: blake3 of its wasm bytes.
pub(crate) fn content_hash(wasm: &[u8]) -> [u8; 32] {
    *blake3::hash(wasm).as_bytes()
}

/// The engine's fingerprint: everything about it that changes compiled code.
fn fingerprint(engine: &wasmtime::Engine) -> [u8; 32] {
    let mut hasher = Blake3Hasher(blake3::Hasher::new_derive_key(KEY_CONTEXT));
    engine.precompile_compatibility_hash().hash(&mut hasher);
    *hasher.0.finalize().as_bytes()
}

/// An artifact held in memory.
struct Entry {
    module: Compiled,
    /// Bytes charged to the budget: the length of the module's compiled code image.
    size: usize,
    /// Value of the recency clock at the last use.
    last_used: u64,
}

/// A compilation (or disk read) in progress that other threads may wait for.
struct Flight {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

/// What a module must pass to be kept, in memory and on disk, and returned by
/// [`ModuleCache::get`]: the ABI check, handed in by the engine (the cache knows
/// nothing of membrane modules).
pub(crate) type Check<A> = fn(&A) -> Result<()>;

/// What a thread asking for a module not in memory does.
enum Role {
    /// Loads it (from disk or by compiling) for everyone.
    Lead(Arc<Flight>),
    /// Waits for the thread loading it.
    Wait(Arc<Flight>),
}

#[derive(Clone)]
enum Outcome {
    /// The module, which passed the check: kept in memory.
    Kept(Compiled),
    /// The module compiled (or read from disk) but failed the check: not kept. Waiters
    /// run the check on it themselves for its error: it is cheap, and answers the same.
    Refused(Compiled),
    /// Why the module failed to compile.
    Invalid(String),
    /// The thread in charge panicked: waiters try again themselves.
    Abandoned,
}

impl Flight {
    fn wait(&self) -> Outcome {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(o) = outcome.as_ref() {
                return o.clone();
            }
            outcome = self
                .done
                .wait(outcome)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn publish(&self, o: Outcome) {
        *lock(&self.outcome) = Some(o);
        self.done.notify_all();
    }
}

/// The in-memory side, behind one mutex.
#[derive(Default)]
struct Memory {
    entries: HashMap<Key, Entry>,
    /// Sum of the entries' sizes.
    bytes: usize,
    /// Recency clock: incremented at every use.
    clock: u64,
    /// Keys being compiled or read from disk right now.
    in_flight: HashMap<Key, Arc<Flight>>,
}

impl Memory {
    fn get(&mut self, key: &Key) -> Option<Compiled> {
        self.clock += 1;
        let entry = self.entries.get_mut(key)?;
        entry.last_used = self.clock;
        Some(entry.module.clone())
    }

    /// Inserts a module, evicting least recently used ones past `budget`; returns how
    /// many were evicted. A module larger than the whole budget is not kept.
    fn insert(&mut self, key: Key, module: Compiled, size: usize, budget: usize) -> u64 {
        if size > budget || self.entries.contains_key(&key) {
            return 0;
        }
        let mut evicted = 0;
        while self.bytes + size > budget {
            // A linear scan: caches hold tens to hundreds of modules, and eviction only
            // follows a compilation, which costs far more.
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.size;
                evicted += 1;
            }
        }
        self.clock += 1;
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                module,
                size,
                last_used: self.clock,
            },
        );
        evicted
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held except on allocation failure; the data
    // stays consistent, so a poisoned lock is used as is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Counters {
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    waited: AtomicU64,
    evictions: AtomicU64,
    disk_writes: AtomicU64,
    disk_rejects: AtomicU64,
    disk_incompatible: AtomicU64,
    disk_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The compiled-module cache of one engine.
pub(crate) struct ModuleCache {
    fingerprint: [u8; 32],
    budget: usize,
    memory: Mutex<Memory>,
    /// The disk cache, when configured and its directory could be opened.
    disk: Option<DiskCache>,
    /// The configured directory and budget, to report why `disk` is missing.
    disk_config: Option<(PathBuf, u64)>,
    counters: Counters,
}

impl ModuleCache {
    /// The cache of `engine`. A cache directory that cannot be created is reported
    /// through `tracing` and the cache works in memory only.
    pub(crate) fn new(engine: &wasmtime::Engine, config: &EngineConfig) -> Result<ModuleCache> {
        let counters = Counters::default();
        let disk = config.cache_dir.as_deref().and_then(|dir| {
            match DiskCache::open(dir, config.disk_cache_size) {
                Ok(d) => Some(d),
                Err(e) => {
                    bump(&counters.disk_errors);
                    tracing::warn!(
                        dir = %dir.display(),
                        error = %e,
                        "cannot open the module cache directory; caching in memory only"
                    );
                    None
                }
            }
        });
        Ok(ModuleCache {
            fingerprint: fingerprint(engine),
            budget: config.cache_size,
            memory: Mutex::new(Memory::default()),
            disk,
            disk_config: config
                .cache_dir
                .clone()
                .map(|dir| (dir, config.disk_cache_size)),
            counters,
        })
    }

    /// The key of an artifact of kind `A` for this engine, from its content hash
    /// (blake3 of its `len` wasm bytes, [`content_hash`]).
    pub(crate) fn key_of<A: Artifact>(&self, content: &[u8; 32], len: usize) -> Key {
        let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
        hasher.update(&self.fingerprint);
        hasher.update(&(len as u64).to_le_bytes());
        hasher.update(content);
        hasher.update(A::KIND);
        Key(*hasher.finalize().as_bytes())
    }

    /// The key of `wasm` as a core module for this engine.
    #[cfg(test)]
    pub(crate) fn key(&self, wasm: &[u8]) -> Key {
        self.key_of::<wasmtime::Module>(&content_hash(wasm), wasm.len())
    }

    /// The compiled module for `wasm`, which passed `check`: from memory, from disk,
    /// from another thread compiling it now, or compiled here (then, if it passes
    /// `check`, kept in memory and written to disk).
    #[cfg(test)]
    pub(crate) fn get_or_compile(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
        check: Check<wasmtime::Module>,
    ) -> Result<wasmtime::Module> {
        self.get(engine, self.key(wasm), wasm, check)
    }

    /// Makes sure the disk cache holds a verified artifact of `module` (compiled from
    /// the `wasm_len` bytes of `key`) and returns its path; `None` without a disk
    /// cache. Failing to write is an error here: writing is what was asked for.
    pub(crate) fn persist<A: Artifact>(
        &self,
        key: &Key,
        wasm_len: usize,
        module: &A,
    ) -> Result<Option<PathBuf>> {
        let Some(disk) = &self.disk else {
            return match &self.disk_config {
                None => Ok(None),
                // Opening failed when the engine was made: say why.
                Some((dir, budget)) => match DiskCache::open(dir, *budget) {
                    Ok(_) => Err(Error::host(format_args!(
                        "the module cache directory {} could not be opened when the engine was created",
                        dir.display()
                    ))),
                    Err(e) => Err(Error::io(dir, e)),
                },
            };
        };
        // The load may have been a memory hit whose file is gone since, or a file may be
        // there that does not verify and must be replaced.
        if let Ok(Lookup::Bytes(bytes, file)) = disk.read(key, wasm_len)
            && disk::verify(&bytes, key).is_ok()
        {
            let _ = DiskCache::touch(&file);
            return Ok(Some(disk.path(key)));
        }
        let artifact = module
            .serialize()
            .map_err(|e| Error::host(format_args!("cannot serialize the {}: {e:#}", A::NAME)))?;
        match disk.write(key, wasm_len, &artifact) {
            Ok(Some(path)) => {
                bump(&self.counters.disk_writes);
                Ok(Some(path))
            }
            Ok(None) => {
                let len = (artifact.len() + disk::HEADER_LEN) as u64;
                let reason = if len > disk.budget() {
                    format!(
                        "the artifact of {len} bytes does not fit in disk_cache_size of {} bytes",
                        disk.budget()
                    )
                } else {
                    format!(
                        "the artifact of {len} bytes is larger than a cache file of a module of {wasm_len} bytes may be ({} bytes at most)",
                        disk::max_file_len(wasm_len)
                    )
                };
                Err(ErrorKind::Config { reason }.into())
            }
            Err(e) => {
                bump(&self.counters.disk_errors);
                Err(Error::io(disk.dir(), e))
            }
        }
    }

    /// [`ModuleCache::get_or_compile`] with the key computed.
    pub(crate) fn get<A: Artifact>(
        &self,
        engine: &wasmtime::Engine,
        key: Key,
        wasm: &[u8],
        check: Check<A>,
    ) -> Result<A> {
        loop {
            let role = {
                let mut memory = lock(&self.memory);
                if let Some(module) = memory.get(&key) {
                    bump(&self.counters.memory_hits);
                    return of_kind(&module);
                }
                match memory.in_flight.get(&key) {
                    Some(f) => Role::Wait(Arc::clone(f)),
                    None => {
                        let f = Arc::new(Flight {
                            outcome: Mutex::new(None),
                            done: Condvar::new(),
                        });
                        memory.in_flight.insert(key, Arc::clone(&f));
                        Role::Lead(f)
                    }
                }
            };
            match role {
                Role::Wait(other) => match other.wait() {
                    Outcome::Kept(module) => {
                        bump(&self.counters.waited);
                        return of_kind(&module);
                    }
                    Outcome::Refused(module) => {
                        bump(&self.counters.waited);
                        let module = of_kind(&module)?;
                        check(&module)?;
                        return Ok(module);
                    }
                    Outcome::Invalid(reason) => {
                        return Err(ErrorKind::InvalidModule { reason }.into());
                    }
                    Outcome::Abandoned => continue,
                },
                // The guard publishes the outcome, even if loading panics.
                Role::Lead(flight) => {
                    let mut guard = FlightGuard {
                        cache: self,
                        key,
                        flight,
                        outcome: None,
                    };
                    let (outcome, result) = self.load_uncached(engine, &key, wasm, check);
                    guard.outcome = Some(outcome);
                    return result;
                }
            }
        }
    }

    /// Loads a module that memory does not hold: from disk when a verified, compatible
    /// artifact is there, else compiled. Then runs `check`: a module that passes is
    /// written to disk if it was compiled (and kept in memory by the flight's guard),
    /// one that fails is kept nowhere. Returns what the waiters get and what the caller
    /// gets.
    fn load_uncached<A: Artifact>(
        &self,
        engine: &wasmtime::Engine,
        key: &Key,
        wasm: &[u8],
        check: Check<A>,
    ) -> (Outcome, Result<A>) {
        let (module, compiled) = match self.load_from_disk::<A>(engine, key, wasm.len()) {
            Some(module) => {
                bump(&self.counters.disk_hits);
                (module, false)
            }
            None => {
                bump(&self.counters.misses);
                match A::compile(engine, wasm) {
                    Ok(module) => (module, true),
                    Err(e) => {
                        let reason = match e.kind() {
                            ErrorKind::InvalidModule { reason } => reason.clone(),
                            other => other.to_string(),
                        };
                        return (Outcome::Invalid(reason), Err(e));
                    }
                }
            }
        };
        if let Err(e) = check(&module) {
            // A file from before refused modules were kept out of the cache.
            if let (false, Some(disk)) = (compiled, &self.disk) {
                disk.remove(key);
            }
            return (Outcome::Refused(module.into_compiled()), Err(e));
        }
        if compiled {
            self.write_to_disk(key, wasm.len(), &module);
        }
        (Outcome::Kept(module.clone().into_compiled()), Ok(module))
    }

    /// Writes a compiled module to the disk cache, if there is one; failures are
    /// reported, not returned: the load goes on without the disk cache.
    fn write_to_disk<A: Artifact>(&self, key: &Key, wasm_len: usize, module: &A) {
        if let Some(disk) = &self.disk {
            match module.serialize() {
                Ok(artifact) => match disk.write(key, wasm_len, &artifact) {
                    Ok(Some(path)) => {
                        bump(&self.counters.disk_writes);
                        tracing::debug!(path = %path.display(), "module cache file written");
                    }
                    Ok(None) => tracing::debug!(
                        size = artifact.len(),
                        "compiled module larger than the disk cache budget or than a cache file of its module may be; not written"
                    ),
                    Err(e) => {
                        bump(&self.counters.disk_errors);
                        tracing::warn!(
                            dir = %disk.dir().display(),
                            error = %e,
                            "cannot write to the module cache directory"
                        );
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot serialize a compiled module"),
            }
        }
    }

    /// The module (of `wasm_len` wasm bytes) from its disk cache file, if there is one
    /// that passes the integrity check and that wasmtime accepts. Anything else is
    /// reported and `None`.
    // The crate denies `unsafe`; this is one of its two exceptions: wasmtime's
    // `Module::deserialize` is unsafe (it runs the machine code it is given), and a disk
    // cache must call it. The file is verified first (see the `SAFETY` comment below).
    #[allow(unsafe_code)]
    fn load_from_disk<A: Artifact>(
        &self,
        engine: &wasmtime::Engine,
        key: &Key,
        wasm_len: usize,
    ) -> Option<A> {
        let disk = self.disk.as_ref()?;
        let path = disk.path(key);
        let (bytes, file) = match disk.read(key, wasm_len) {
            Ok(Lookup::Absent) => return None,
            Ok(Lookup::Bytes(bytes, file)) => (bytes, file),
            Ok(Lookup::Rejected(reject)) => {
                self.reject(disk, key, &path, &reject);
                return None;
            }
            Err(e) => {
                bump(&self.counters.disk_errors);
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot read a module cache file; compiling"
                );
                return None;
            }
        };
        let artifact = match disk::verify(&bytes, key) {
            Ok(artifact) => artifact,
            Err(reject) => {
                self.reject(disk, key, &path, &reject);
                return None;
            }
        };
        // SAFETY: `artifact` is a slice of `bytes`, an owned buffer holding the whole
        // file as read once; nothing can change it between the check and this call.
        // `verify` accepted it: the blake3 digest in the header matches these exact
        // bytes, so they are, unmodified, what `DiskCache::write` stored, and only
        // `load_uncached` and `precompile` write, always the output of
        // `Artifact::serialize` of the kind `A` — the input `A::deserialize` is
        // documented to take: the key, which the header matches, is derived from the kind
        // (`Artifact::KIND`), so a file written for the other kind has another key.
        // The header's key also says the artifact was produced by an engine with
        // this engine's fingerprint (wasmtime version and compilation settings included).
        // `deserialize` copies the bytes into its own memory; `bytes` may then be freed.
        match unsafe { A::deserialize(engine, artifact) } {
            Ok(module) => {
                if let Err(e) = DiskCache::touch(&file) {
                    tracing::debug!(path = %path.display(), error = %e, "cannot renew the modification time of a module cache file");
                }
                tracing::debug!(path = %path.display(), "module loaded from the disk cache");
                Some(module)
            }
            Err(e) => {
                bump(&self.counters.disk_incompatible);
                tracing::warn!(
                    path = %path.display(),
                    error = %format_args!("{e:#}"),
                    "wasmtime refused a module cache file as incompatible; recompiling and replacing it"
                );
                None
            }
        }
    }

    #[cold]
    fn reject(&self, disk: &DiskCache, key: &Key, path: &std::path::Path, reject: &disk::Reject) {
        bump(&self.counters.disk_rejects);
        tracing::warn!(
            path = %path.display(),
            reason = %reject,
            "refusing a module cache file without deserializing it; recompiling and replacing it"
        );
        // Removed now so that it does not linger if the rewrite fails.
        disk.remove(key);
    }

    /// The counters, and the memory gauges read at once.
    pub(crate) fn stats(&self) -> CacheStats {
        let (memory_entries, memory_bytes) = {
            let m = lock(&self.memory);
            (m.entries.len() as u64, m.bytes as u64)
        };
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            memory_hits: get(&c.memory_hits),
            disk_hits: get(&c.disk_hits),
            misses: get(&c.misses),
            waited: get(&c.waited),
            evictions: get(&c.evictions),
            memory_entries,
            memory_bytes,
            disk_writes: get(&c.disk_writes),
            disk_rejects: get(&c.disk_rejects),
            disk_incompatible: get(&c.disk_incompatible),
            disk_evictions: self.disk.as_ref().map_or(0, DiskCache::evictions),
            disk_errors: get(&c.disk_errors),
        }
    }
}

/// Ends a flight: stores a loaded module that passed the check in memory, removes the
/// flight and wakes its waiters with the outcome — or, when dropped without one (a panic), with
/// [`Outcome::Abandoned`] so that they try again.
struct FlightGuard<'a> {
    cache: &'a ModuleCache,
    key: Key,
    flight: Arc<Flight>,
    outcome: Option<Outcome>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or(Outcome::Abandoned);
        {
            // Under one lock: the module becomes visible as the flight disappears, so no
            // thread can find neither and compile again.
            let mut memory = lock(&self.cache.memory);
            memory.in_flight.remove(&self.key);
            if let Outcome::Kept(module) = &outcome {
                let size = match module {
                    Compiled::Module(m) => m.code_size(),
                    #[cfg(feature = "component")]
                    Compiled::Component(c) => c.code_size(),
                };
                let evicted = memory.insert(self.key, module.clone(), size, self.cache.budget);
                self.cache
                    .counters
                    .evictions
                    .fetch_add(evicted, Ordering::Relaxed);
            }
        }
        self.flight.publish(outcome);
    }
}

/// The artifact of kind `A` in `compiled`. A key is derived from the kind, so what
/// the cache holds under a key of kind `A` is always of kind `A`; the error is a
/// defensive answer, never expected.
fn of_kind<A: Artifact>(compiled: &Compiled) -> Result<A> {
    A::from_compiled(compiled).ok_or_else(|| {
        Error::host(format_args!(
            "the compiled-artifact cache holds another kind than a {} under its key",
            A::NAME
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_runtime::AbiViolation;

    /// A check every module passes.
    fn accept(_: &wasmtime::Module) -> Result<()> {
        Ok(())
    }

    /// A check every module fails.
    fn refuse(_: &wasmtime::Module) -> Result<()> {
        Err(Error::abi(AbiViolation::NotMembrane))
    }

    fn assert_refused(result: Result<wasmtime::Module>) {
        let err = result.expect_err("refused");
        assert!(
            matches!(err.kind(), ErrorKind::Abi(AbiViolation::NotMembrane)),
            "{err}"
        );
    }

    fn engine(config: &EngineConfig) -> wasmtime::Engine {
        wasmtime::Engine::new(&config.to_wasmtime().unwrap()).unwrap()
    }

    fn wasm(n: u32) -> Vec<u8> {
        wat::parse_str(format!(
            "(module (func (export \"f\") (result i32) i32.const {n}))"
        ))
        .unwrap()
    }

    #[test]
    fn keys_depend_on_bytes_and_on_code_changing_settings_only() {
        let base = EngineConfig::default();
        let a = ModuleCache::new(&engine(&base), &base).unwrap();
        // Another engine with the same settings, and one differing only in settings
        // that do not change code: same keys.
        let b = ModuleCache::new(&engine(&base), &base).unwrap();
        let runtime_only = EngineConfig::default()
            .timeout(None)
            .max_memory(1 << 20)
            .max_wasm_stack(64 << 10)
            .pooling(true)
            .pooling_max_instances(4)
            .cache_size(1)
            .disk_cache_size(1);
        let c = ModuleCache::new(&engine(&runtime_only), &runtime_only).unwrap();
        assert_eq!(a.key(&wasm(1)), b.key(&wasm(1)));
        assert_eq!(a.key(&wasm(1)), c.key(&wasm(1)));
        assert_ne!(a.key(&wasm(1)), a.key(&wasm(2)));
        // Settings wasmtime's own artifact check does not look at (NaN
        // canonicalization) and ones it does (fuel, memory reservation): other keys.
        for other in [
            EngineConfig::default().nan_canonicalization(true),
            EngineConfig::default().fuel(None),
            EngineConfig::default().static_memory_bound(1 << 30),
        ] {
            let d = ModuleCache::new(&engine(&other), &other).unwrap();
            assert_ne!(a.key(&wasm(1)), d.key(&wasm(1)), "{other:?}");
        }
    }

    /// Why the key is checked before deserializing: wasmtime's own check of an
    /// artifact does not cover NaN canonicalization, so an artifact compiled without
    /// it would load into an engine that promises it, and quietly break determinism.
    #[test]
    // A test of what wasmtime's unsafe `deserialize` accepts: it must call it.
    #[allow(unsafe_code)]
    fn wasmtime_alone_accepts_an_artifact_of_other_nan_settings() {
        let plain = engine(&EngineConfig::default());
        let canonical = engine(&EngineConfig::default().nan_canonicalization(true));
        let artifact = plain.precompile_module(&wasm(5)).unwrap();
        // SAFETY: `artifact` is the unmodified output of `Engine::precompile_module`
        // of this wasmtime, the input `deserialize` is documented to take.
        let loaded = unsafe { wasmtime::Module::deserialize(&canonical, &artifact) };
        assert!(
            loaded.is_ok(),
            "wasmtime now checks NaN canonicalization itself"
        );
    }

    #[test]
    fn key_hex_is_the_bytes_in_order() {
        let mut k = [0u8; 32];
        k[0] = 0x0f;
        k[31] = 0xa0;
        let hex = Key(k).hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("0f00"));
        assert!(hex.ends_with("00a0"));
    }

    /// A file with a sound header for the right key, holding an artifact wasmtime made
    /// for an engine with another memory reservation: the integrity check passes, so
    /// it is wasmtime's own compatibility check that must refuse it.
    #[test]
    fn a_verified_but_incompatible_artifact_is_recompiled_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::default().cache_dir(Some(dir.path().to_path_buf()));
        let ours = engine(&config);
        let cache = ModuleCache::new(&ours, &config).unwrap();
        let bytes = wasm(7);
        let key = cache.key(&bytes);
        let foreign = engine(&EngineConfig::default().static_memory_bound(1 << 30));
        let artifact = foreign.precompile_module(&bytes).unwrap();
        let disk = cache.disk.as_ref().unwrap();
        disk.write(&key, bytes.len(), &artifact).unwrap().unwrap();

        cache.get_or_compile(&ours, &bytes, accept).unwrap();
        let s = cache.stats();
        assert_eq!((s.disk_incompatible, s.disk_hits, s.misses), (1, 0, 1));
        assert_eq!(s.disk_writes, 1);

        // Replaced by an artifact this engine accepts.
        let again = ModuleCache::new(&ours, &config).unwrap();
        again.get_or_compile(&ours, &bytes, accept).unwrap();
        let s = again.stats();
        assert_eq!((s.disk_hits, s.misses, s.disk_incompatible), (1, 0, 0));
    }

    /// The worst ratio of artifact to wasm bytes measured for `disk::max_file_len`: a
    /// module of empty functions (4 bytes of wasm each). Its file fits the bound, and
    /// needs the per-byte allowance to (the fixed part alone is too small).
    #[test]
    fn artifacts_of_empty_functions_fit_the_file_size_bound() {
        let e = engine(&EngineConfig::default());
        let wasm = wat::parse_str(format!("(module {})", "(func)".repeat(20_000))).unwrap();
        let artifact = e.precompile_module(&wasm).unwrap();
        let file = (disk::HEADER_LEN + artifact.len()) as u64;
        assert!(
            file <= disk::max_file_len(wasm.len()),
            "{file} for {}",
            wasm.len()
        );
        assert!(file > disk::max_file_len(0), "{file} for {}", wasm.len());
    }

    #[test]
    fn a_failed_compilation_is_shared_but_not_kept() {
        let config = EngineConfig::default();
        let e = engine(&config);
        let cache = ModuleCache::new(&e, &config).unwrap();
        for _ in 0..2 {
            let err = cache
                .get_or_compile(&e, b"\0asm\x01\0\0\0\xff", accept)
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidModule { .. }),
                "{err}"
            );
        }
        let s = cache.stats();
        assert_eq!((s.misses, s.memory_hits, s.memory_entries), (2, 0, 0));
        assert!(lock(&cache.memory).in_flight.is_empty());
    }

    /// A waiter of a flight whose module the check refused gets the check's own error
    /// (not an invalid-module message made of it), and nothing is kept.
    #[test]
    fn waiters_of_a_refused_module_get_the_error_of_the_check() {
        let config = EngineConfig::default();
        let e = engine(&config);
        let cache = ModuleCache::new(&e, &config).unwrap();
        let bytes = wasm(4);
        let key = cache.key(&bytes);
        let flight = Arc::new(Flight {
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        lock(&cache.memory)
            .in_flight
            .insert(key, Arc::clone(&flight));
        let module = <wasmtime::Module as Artifact>::compile(&e, &bytes).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| cache.get_or_compile(&e, &bytes, refuse));
            while Arc::strong_count(&flight) < 3 {
                std::thread::yield_now();
            }
            drop(FlightGuard {
                cache: &cache,
                key,
                flight: Arc::clone(&flight),
                outcome: Some(Outcome::Refused(Compiled::Module(module))),
            });
            assert_refused(waiter.join().unwrap());
        });
        let s = cache.stats();
        assert_eq!((s.waited, s.misses, s.memory_entries), (1, 0, 0));
        assert!(lock(&cache.memory).in_flight.is_empty());
    }

    /// An artifact on disk of a module the check refuses (as written before refused
    /// modules were kept out of the cache) is removed when read.
    #[test]
    fn a_refused_module_read_from_disk_is_removed_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::default().cache_dir(Some(dir.path().to_path_buf()));
        let e = engine(&config);
        let bytes = wasm(9);
        let first = ModuleCache::new(&e, &config).unwrap();
        first.get_or_compile(&e, &bytes, accept).unwrap();
        let path = first.disk.as_ref().unwrap().path(&first.key(&bytes));
        assert!(path.exists());

        let cache = ModuleCache::new(&e, &config).unwrap();
        assert_refused(cache.get_or_compile(&e, &bytes, refuse));
        assert!(!path.exists());
        let s = cache.stats();
        assert_eq!((s.disk_hits, s.misses, s.memory_entries), (1, 0, 0));
    }

    #[test]
    fn a_panicking_loader_lets_waiters_retry() {
        let config = EngineConfig::default();
        let e = engine(&config);
        let cache = ModuleCache::new(&e, &config).unwrap();
        let bytes = wasm(3);
        let key = cache.key(&bytes);
        // A flight whose leader dies: its guard drops without an outcome.
        let flight = Arc::new(Flight {
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        lock(&cache.memory)
            .in_flight
            .insert(key, Arc::clone(&flight));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| cache.get_or_compile(&e, &bytes, accept));
            while Arc::strong_count(&flight) < 3 {
                std::thread::yield_now();
            }
            drop(FlightGuard {
                cache: &cache,
                key,
                flight: Arc::clone(&flight),
                outcome: None,
            });
            waiter.join().unwrap().unwrap();
        });
        assert_eq!(cache.stats().misses, 1);
    }
}
