//! The on-disk cache: artifact file format, verification before deserializing, atomic
//! writes, the size bounds and the cleaning of abandoned temporary files.
//!
//! A cache file is named `<key in hex>.cwasm` and holds a fixed header followed by the
//! artifact wasmtime produced (`Module::serialize`):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0      | 8    | magic `MBRNCWSM` |
//! | 8      | 4    | format version, u32 little endian ([`FORMAT_VERSION`]) |
//! | 12     | 4    | reserved, zero |
//! | 16     | 32   | cache key: what module and which engine settings the artifact is for |
//! | 48     | 8    | artifact length in bytes, u64 little endian |
//! | 56     | 32   | blake3 digest of bytes 0..56 followed by the artifact |
//! | 88     | n    | the artifact |
//!
//! Nothing in a file is handed to the unsafe `wasmtime::Module::deserialize` before
//! [`verify`] has checked magic, version, key, length and digest of those very bytes.
//! Before that, [`DiskCache::read`] opens a file without waiting (a FIFO could block),
//! refuses anything but a regular file, and refuses a size no artifact of the module can
//! have ([`max_file_len`]) before it allocates memory for the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::Key;

/// First bytes of every cache file.
pub(super) const MAGIC: [u8; 8] = *b"MBRNCWSM";
/// Version of the file layout above.
pub(super) const FORMAT_VERSION: u32 = 1;
/// Length of the header before the artifact.
pub(super) const HEADER_LEN: usize = 88;
const _: () = assert!(HEADER_LEN == MAGIC.len() + 4 + 4 + 32 + 8 + 32);

/// Extension of artifact files.
const EXTENSION: &str = "cwasm";
/// Prefix of temporary files being written (never looked up, never counted).
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this belong to a writer that crashed: removed.
const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);

/// Artifact bytes one wasm byte may compile to, at most (see [`max_file_len`]).
const ARTIFACT_BYTES_PER_WASM_BYTE: u64 = 128;
/// Artifact bytes of any module on top of those its wasm bytes account for.
const ARTIFACT_OVERHEAD: u64 = 1 << 20;

/// The largest cache file the artifact of a module of `wasm_len` wasm bytes can make:
/// the header, 1 MiB, and 128 bytes per wasm byte. wasmtime 48's artifacts, measured on
/// x86-64 with this host's settings (fuel and epoch checks on): about 3 bytes per wasm
/// byte for the guest examples, 71 at worst for a module of empty functions (4 bytes of
/// wasm and about 285 of code and metadata each; a unit test pins that they fit), and
/// 14 KiB for a module without code. A larger file is refused before any memory is
/// allocated for it, however large the disk budget; a larger artifact is not written
/// (its module is compiled at every load, like one larger than the budget).
pub(super) fn max_file_len(wasm_len: usize) -> u64 {
    u64::try_from(wasm_len)
        .unwrap_or(u64::MAX)
        .saturating_mul(ARTIFACT_BYTES_PER_WASM_BYTE)
        .saturating_add(ARTIFACT_OVERHEAD + HEADER_LEN as u64)
}

/// Why a cache file was refused before deserializing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reject {
    /// A FIFO, a device, a directory, ...: only regular files are read.
    NotAFile,
    /// Shorter than the header (an empty or truncated file).
    TooShort { len: u64 },
    /// Larger than the disk budget: not written by a cache with this budget.
    TooLarge { len: u64, budget: u64 },
    /// Larger than any artifact of the module can be ([`max_file_len`]).
    TooLargeForModule { len: u64, max: u64 },
    /// The file's size changed between its metadata and the end of reading it.
    SizeChanged { len: u64, read: u64 },
    /// Does not start with the magic bytes: not a membrane cache file.
    BadMagic,
    /// Another layout version, or reserved bits set.
    Version { found: u32 },
    /// The length field disagrees with the file size (truncated or appended to).
    Length { declared: u64, actual: u64 },
    /// The digest does not match the contents: corrupted.
    Digest,
    /// A sound file for another module or other engine settings (copied or renamed).
    OtherKey,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::NotAFile => f.write_str("not a regular file"),
            Reject::TooShort { len } => {
                write!(
                    f,
                    "file of {len} bytes is shorter than the {HEADER_LEN}-byte header"
                )
            }
            Reject::TooLarge { len, budget } => write!(
                f,
                "file of {len} bytes is larger than the disk cache budget of {budget} bytes"
            ),
            Reject::TooLargeForModule { len, max } => write!(
                f,
                "file of {len} bytes is larger than an artifact of this module can be ({max} bytes at most)"
            ),
            Reject::SizeChanged { len, read } => write!(
                f,
                "file of {len} bytes changed size while it was read ({read} bytes read)"
            ),
            Reject::BadMagic => f.write_str("not a membrane cache file (bad magic)"),
            Reject::Version { found } => write!(
                f,
                "cache file format {found:#x}, this host reads format {FORMAT_VERSION}"
            ),
            Reject::Length { declared, actual } => write!(
                f,
                "header declares an artifact of {declared} bytes, the file holds {actual}"
            ),
            Reject::Digest => f.write_str("digest mismatch: the file is corrupted"),
            Reject::OtherKey => {
                f.write_str("artifact of another module or of other engine settings")
            }
        }
    }
}

/// The digest stored in a header: over the header fields before it and the artifact.
fn digest(fields: &[u8], artifact: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(fields);
    hasher.update(artifact);
    *hasher.finalize().as_bytes()
}

/// The header of a cache file holding `artifact` for `key`.
pub(super) fn header(key: &Key, artifact: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // 12..16 reserved, zero.
    h[16..48].copy_from_slice(&key.0);
    h[48..56].copy_from_slice(&(artifact.len() as u64).to_le_bytes());
    let d = digest(&h[..56], artifact);
    h[56..88].copy_from_slice(&d);
    h
}

/// Checks a whole cache file read into memory and returns the artifact inside it: the
/// header's magic, version, key and length, then the digest over header and artifact.
/// Only what this returns may be deserialized.
pub(super) fn verify<'a>(file: &'a [u8], key: &Key) -> Result<&'a [u8], Reject> {
    let Some((h, artifact)) = file.split_first_chunk::<HEADER_LEN>() else {
        return Err(Reject::TooShort {
            len: file.len() as u64,
        });
    };
    if h[0..8] != MAGIC {
        return Err(Reject::BadMagic);
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != FORMAT_VERSION || h[12..16] != [0; 4] {
        return Err(Reject::Version { found: version });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[48..56]);
    let declared = u64::from_le_bytes(len);
    if declared != artifact.len() as u64 {
        return Err(Reject::Length {
            declared,
            actual: artifact.len() as u64,
        });
    }
    if digest(&h[..56], artifact) != h[56..88] {
        return Err(Reject::Digest);
    }
    // Checked after the digest so that a corrupted key reads as corruption.
    if h[16..48] != key.0 {
        return Err(Reject::OtherKey);
    }
    Ok(artifact)
}

/// What looking up a cache file gave.
pub(super) enum Lookup {
    /// No file for this key.
    Absent,
    /// The whole file, read into memory.
    Bytes(Vec<u8>, File),
    /// The file was refused before deserializing.
    Rejected(Reject),
}

/// A cache directory and its size budget.
pub(super) struct DiskCache {
    dir: PathBuf,
    budget: u64,
    /// Files this process removed to respect the budget.
    evictions: AtomicU64,
}

impl DiskCache {
    /// Opens (creating it if needed) the cache directory and removes temporary files
    /// left by crashed writers.
    pub(super) fn open(dir: &Path, budget: u64) -> io::Result<DiskCache> {
        create_dir(dir)?;
        let disk = DiskCache {
            dir: dir.to_path_buf(),
            budget,
            evictions: AtomicU64::new(0),
        };
        disk.remove_stale_temps();
        Ok(disk)
    }

    /// The directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size budget in bytes.
    pub(super) fn budget(&self) -> u64 {
        self.budget
    }

    /// Files this process removed to respect the budget.
    pub(super) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Path of the artifact file for `key`.
    pub(super) fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.{EXTENSION}", key.hex()))
    }

    /// Reads the file for `key`, the artifact of a module of `wasm_len` bytes, into
    /// memory: opened without waiting, refused unless it is a regular file whose size
    /// can be that of a file this cache wrote for that module, and only then read, up
    /// to that size.
    pub(super) fn read(&self, key: &Key, wasm_len: usize) -> io::Result<Lookup> {
        let mut file = match open_without_waiting(&self.path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Absent),
            Err(e) => return Err(e),
        };
        // The metadata of the file opened, not of the path: what is checked is what
        // is read.
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(Lookup::Rejected(Reject::NotAFile));
        }
        let len = meta.len();
        if len < HEADER_LEN as u64 {
            return Ok(Lookup::Rejected(Reject::TooShort { len }));
        }
        if len > self.budget {
            return Ok(Lookup::Rejected(Reject::TooLarge {
                len,
                budget: self.budget,
            }));
        }
        let max = max_file_len(wasm_len);
        if len > max {
            return Ok(Lookup::Rejected(Reject::TooLargeForModule { len, max }));
        }
        // Allocated only now that the size is bounded, and without aborting if the
        // allocator refuses.
        let mut bytes = Vec::new();
        usize::try_from(len)
            .ok()
            .and_then(|n| bytes.try_reserve_exact(n).ok())
            .ok_or(io::ErrorKind::OutOfMemory)?;
        // At most one byte past the size seen: a file growing meanwhile is noticed
        // instead of being read without end.
        (&mut file)
            .take(len.saturating_add(1))
            .read_to_end(&mut bytes)?;
        let read = bytes.len() as u64;
        if read != len {
            return Ok(Lookup::Rejected(Reject::SizeChanged { len, read }));
        }
        Ok(Lookup::Bytes(bytes, file))
    }

    /// Marks a file as just used, for the oldest-used-first removal.
    pub(super) fn touch(file: &File) -> io::Result<()> {
        file.set_modified(SystemTime::now())
    }

    /// Writes `artifact` for `key`, compiled from a module of `wasm_len` bytes: into a
    /// new temporary file in the directory, synced, then renamed over the final name,
    /// so that readers (in this process or another) see the old file, no file, or the
    /// whole new file, never a part. Then removes oldest-used files past the budget.
    /// Returns the final path, or `None` when [`DiskCache::read`] would refuse the
    /// file for its size: larger than the budget or than [`max_file_len`] (nothing is
    /// written).
    pub(super) fn write(
        &self,
        key: &Key,
        wasm_len: usize,
        artifact: &[u8],
    ) -> io::Result<Option<PathBuf>> {
        let total = (HEADER_LEN + artifact.len()) as u64;
        if total > self.budget || total > max_file_len(wasm_len) {
            return Ok(None);
        }
        let path = self.path(key);
        let (temp, mut file) = self.create_temp()?;
        let written = file
            .write_all(&header(key, artifact))
            .and_then(|()| file.write_all(artifact))
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                drop(file);
                fs::rename(&temp, &path)
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        sync_dir(&self.dir);
        self.enforce_budget(&path);
        Ok(Some(path))
    }

    /// Removes a refused file (best effort: a rewrite replaces it anyway).
    pub(super) fn remove(&self, key: &Key) {
        let _ = fs::remove_file(self.path(key));
    }

    /// A new temporary file with a name no other writer uses.
    fn create_temp(&self) -> io::Result<(PathBuf, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = self.dir.join(format!("{TEMP_PREFIX}{pid}-{n}-{nanos:08x}"));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => return Ok((temp, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free temporary file name")))
    }

    /// Removes oldest-used artifact files (by modification time, which a hit renews)
    /// until the directory's artifacts fit the budget. `keep` (the file just written)
    /// is never removed. Other processes may do the same at once: files already gone
    /// are skipped.
    fn enforce_budget(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_artifact_name(name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.len();
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((used, meta.len(), entry.path()));
        }
        if total <= self.budget {
            return;
        }
        files.sort_by_key(|f| f.0);
        for (_, len, path) in files {
            if total <= self.budget {
                break;
            }
            if path == keep {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        path = %path.display(),
                        "removed a module cache file past the disk budget"
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => total -= len,
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot remove a module cache file past the disk budget"
                ),
            }
        }
    }

    /// Removes temporary files older than [`STALE_TEMP_AGE`]: writers that crashed
    /// between creating and renaming them. Younger ones may still be in use.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX)) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP_AGE));
            if stale {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::debug!(
                        path = %entry.path().display(),
                        "removed a temporary file left by a crashed cache writer"
                    ),
                    Err(e) => tracing::warn!(
                        path = %entry.path().display(),
                        error = %e,
                        "cannot remove a stale temporary file of the module cache"
                    ),
                }
            }
        }
    }
}

/// Whether `name` is an artifact file name: 64 lower-case hex digits and `.cwasm`.
/// Only such files are ever counted or removed, so a cache directory shared with other
/// files loses none of them.
pub(super) fn is_artifact_name(name: &str) -> bool {
    name.strip_suffix(EXTENSION)
        .and_then(|n| n.strip_suffix('.'))
        .is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// Creates the cache directory; on Unix a directory created here is private to its
/// owner (mode 0700), since whoever can write into it can make the host run any code.
fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    #[cfg(unix)]
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o022 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            "the module cache directory is writable by other users, who can make this host run any code through it; make it writable by its owner only"
        );
    }
    Ok(())
}

/// Opens a file for reading without waiting: on Unix with `O_NONBLOCK`, so that a FIFO
/// found in place of a cache file does not block until some writer opens it (it is
/// then refused as not a regular file). Reads of a regular file ignore the flag.
fn open_without_waiting(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// Makes a rename durable (best effort; not possible on every platform).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    fn file(key: &Key, artifact: &[u8]) -> Vec<u8> {
        let mut f = header(key, artifact).to_vec();
        f.extend_from_slice(artifact);
        f
    }

    #[test]
    fn a_written_file_verifies() {
        let artifact = b"\x7fELF pretend artifact".repeat(100);
        let f = file(&key(1), &artifact);
        assert_eq!(verify(&f, &key(1)), Ok(&artifact[..]));
        let empty = file(&key(1), &[]);
        assert_eq!(verify(&empty, &key(1)), Ok(&[][..]));
    }

    #[test]
    fn every_damage_is_refused() {
        let artifact: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let good = file(&key(1), &artifact);
        let check = |bytes: &[u8], expected: Reject| {
            assert_eq!(verify(bytes, &key(1)), Err(expected));
        };
        check(&[], Reject::TooShort { len: 0 });
        check(&good[..HEADER_LEN - 1], Reject::TooShort { len: 87 });
        check(
            &good[..good.len() - 1],
            Reject::Length {
                declared: 5000,
                actual: 4999,
            },
        );
        check(
            &good[..HEADER_LEN],
            Reject::Length {
                declared: 5000,
                actual: 0,
            },
        );
        let mut longer = good.clone();
        longer.push(0);
        check(
            &longer,
            Reject::Length {
                declared: 5000,
                actual: 5001,
            },
        );
        check(&artifact, Reject::BadMagic);
        check(&[0u8; 200], Reject::BadMagic);
        check(&file(&key(2), &artifact), Reject::OtherKey);
        // A flipped bit anywhere is refused; which check catches it depends on where.
        for at in (0..good.len())
            .step_by(97)
            .chain([0, 8, 12, 16, 48, 56, 87, 88])
        {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let err = verify(&bad, &key(1)).expect_err("a flipped bit is refused");
            let expected_field = match at {
                0..8 => matches!(err, Reject::BadMagic),
                8..16 => matches!(err, Reject::Version { .. }),
                48..56 => matches!(err, Reject::Length { .. }),
                _ => matches!(err, Reject::Digest),
            };
            assert!(expected_field, "byte {at}: {err}");
        }
    }

    /// What `read` answered, for assertions (`Lookup` holds a `File`).
    fn lookup(disk: &DiskCache, key: &Key, wasm_len: usize) -> Result<usize, Reject> {
        match disk.read(key, wasm_len).unwrap() {
            Lookup::Absent => panic!("no file"),
            Lookup::Bytes(bytes, _) => Ok(bytes.len()),
            Lookup::Rejected(r) => Err(r),
        }
    }

    #[test]
    fn sizes_no_artifact_of_the_module_can_have_are_neither_written_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCache::open(dir.path(), u64::MAX).unwrap();
        let max = max_file_len(10);
        assert_eq!(max, 88 + (1 << 20) + 10 * 128);
        let largest = vec![7u8; (max - HEADER_LEN as u64) as usize];
        let path = disk.write(&key(1), 10, &largest).unwrap().unwrap();
        assert_eq!(lookup(&disk, &key(1), 10), Ok(max as usize));
        assert_eq!(
            disk.write(&key(2), 10, &[largest, vec![0]].concat())
                .unwrap(),
            None
        );
        // The same file read for a smaller module, and claiming 1 TiB (sparse): refused
        // from the metadata, nothing read or allocated.
        assert_eq!(
            lookup(&disk, &key(1), 9),
            Err(Reject::TooLargeForModule {
                len: max,
                max: max - 128
            })
        );
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        assert_eq!(
            lookup(&disk, &key(1), 10),
            Err(Reject::TooLargeForModule { len: 1 << 40, max })
        );
        assert_eq!(max_file_len(usize::MAX), u64::MAX);
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCache::open(dir.path(), u64::MAX).unwrap();
        fs::create_dir(disk.path(&key(1))).unwrap();
        assert_eq!(lookup(&disk, &key(1), 10), Err(Reject::NotAFile));
        std::os::unix::fs::symlink("/dev/null", disk.path(&key(2))).unwrap();
        assert_eq!(lookup(&disk, &key(2), 10), Err(Reject::NotAFile));
    }

    #[test]
    fn artifact_names() {
        let k = key(0xab);
        assert!(is_artifact_name(&format!("{}.cwasm", k.hex())));
        assert!(!is_artifact_name(&format!(
            "{}.cwasm",
            k.hex().to_uppercase()
        )));
        assert!(!is_artifact_name(&format!("{TEMP_PREFIX}1-2-3")));
        assert!(!is_artifact_name("notes.cwasm"));
        assert!(!is_artifact_name(&k.hex()));
    }

    #[test]
    fn reject_messages_are_lower_case_without_trailing_period() {
        for r in [
            Reject::NotAFile,
            Reject::TooShort { len: 3 },
            Reject::TooLarge { len: 3, budget: 1 },
            Reject::TooLargeForModule { len: 3, max: 1 },
            Reject::SizeChanged { len: 3, read: 4 },
            Reject::BadMagic,
            Reject::Version { found: 2 },
            Reject::Length {
                declared: 1,
                actual: 2,
            },
            Reject::Digest,
            Reject::OtherKey,
        ] {
            let s = r.to_string();
            assert!(!s.chars().next().unwrap().is_uppercase(), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }
}
