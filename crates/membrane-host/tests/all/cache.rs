//! The compiled-module cache: memory hits, eviction, one compilation under concurrency,
//! the disk cache across engines and processes, damaged files, the size bound.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, SystemTime};

use membrane_host::{AbiViolation, CacheStats, Engine, EngineConfig, ErrorKind, HostFunctions};

use crate::support::guest_bytes;

/// A valid membrane module (memory, allocation entry, ABI version export) with
/// `functions` functions of some size; `seed` makes its bytes, and its key, unique.
fn generated(seed: u32, functions: u32) -> Vec<u8> {
    generated_with(seed, functions, r#"(func (export "__membrane_abi_v1"))"#)
}

/// [`generated`] without the ABI version export: valid wasm that the ABI check refuses.
fn generated_not_membrane(seed: u32, functions: u32) -> Vec<u8> {
    generated_with(seed, functions, "")
}

fn generated_with(seed: u32, functions: u32, abi_export: &str) -> Vec<u8> {
    let mut wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "__membrane_alloc") (param i32 i32) (result i32) i32.const 8)
  {abi_export}
"#,
    );
    for f in 0..functions {
        wat.push_str(&format!(
            "  (func (export \"f{f}\") (param i32 i32) (result i64) (local i64)\n    local.get 0 i64.extend_i32_u i64.const {} i64.add local.set 2\n",
            u64::from(seed) << 32 | u64::from(f)
        ));
        for round in 0..12u64 {
            wat.push_str(&format!(
                "    local.get 2 i64.const {} i64.mul local.get 1 i64.extend_i32_u i64.xor i64.const {round} i64.rotl local.set 2\n",
                0x9e37_79b9_7f4a_7c15u64.wrapping_add(round) | 1
            ));
        }
        wat.push_str("    local.get 2)\n");
    }
    wat.push(')');
    wat::parse_str(&wat).expect("generated module is valid")
}

fn engine(config: EngineConfig) -> Engine {
    Engine::new(config).expect("engine")
}

fn disk_engine(dir: &Path) -> Engine {
    engine(EngineConfig::default().cache_dir(Some(dir.to_path_buf())))
}

/// Loads `wasm` and makes an instance of it, proving the loaded code is usable.
fn load_and_instantiate(engine: &Engine, wasm: &[u8]) {
    engine
        .load(wasm)
        .expect("loads")
        .prepare(&HostFunctions::<()>::new())
        .expect("links")
        .instantiate(())
        .expect("instantiates");
}

/// The artifact files in a cache directory, sorted.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    files.sort();
    files
}

/// Every file name in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The one artifact file in a cache directory.
fn only_artifact(dir: &Path) -> PathBuf {
    let files = artifacts(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

/// `(memory_hits, disk_hits, waited, misses)`.
fn answers(s: CacheStats) -> (u64, u64, u64, u64) {
    (s.memory_hits, s.disk_hits, s.waited, s.misses)
}

#[test]
fn second_load_is_a_memory_hit() {
    let engine = engine(EngineConfig::default());
    let wasm = generated(1, 4);
    engine.load(&wasm).unwrap();
    let s = engine.cache_stats();
    assert_eq!(answers(s), (0, 0, 0, 1));
    assert_eq!(s.memory_entries, 1);
    assert!(s.memory_bytes > 0);

    engine.load(&wasm).unwrap();
    // Through a file too.
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), &wasm).unwrap();
    engine.load_file(file.path()).unwrap();
    assert_eq!(answers(engine.cache_stats()), (2, 0, 0, 1));

    // Other bytes: a miss.
    engine.load(&generated(2, 4)).unwrap();
    let s = engine.cache_stats();
    assert_eq!(answers(s), (2, 0, 0, 2));
    assert_eq!((s.memory_entries, s.evictions), (2, 0));
}

#[test]
fn least_recently_used_module_is_evicted_past_the_budget() {
    let size = {
        let probe = engine(EngineConfig::default());
        probe.load(&generated(10, 20)).unwrap();
        probe.cache_stats().memory_bytes
    };
    // Room for two of these modules, not three.
    let engine = engine(EngineConfig::default().cache_size(usize::try_from(size * 5 / 2).unwrap()));
    let [a, b, c] = [11, 12, 13].map(|seed| generated(seed, 20));
    engine.load(&a).unwrap();
    engine.load(&b).unwrap();
    engine.load(&a).unwrap(); // a is now more recent than b
    engine.load(&c).unwrap(); // evicts b
    let s = engine.cache_stats();
    assert_eq!((s.evictions, s.memory_entries), (1, 2));
    assert!(s.memory_bytes <= size * 5 / 2, "{s:?}");
    assert_eq!(answers(s), (1, 0, 0, 3));

    engine.load(&a).unwrap();
    engine.load(&c).unwrap();
    assert_eq!(answers(engine.cache_stats()), (3, 0, 0, 3));
    engine.load(&b).unwrap(); // compiled again, evicts a
    let s = engine.cache_stats();
    assert_eq!(answers(s), (3, 0, 0, 4));
    assert_eq!(s.evictions, 2);
}

#[test]
fn a_module_larger_than_the_budget_is_compiled_but_not_kept() {
    let engine = engine(EngineConfig::default().cache_size(1));
    let wasm = generated(20, 2);
    load_and_instantiate(&engine, &wasm);
    load_and_instantiate(&engine, &wasm);
    let s = engine.cache_stats();
    assert_eq!(answers(s), (0, 0, 0, 2));
    assert_eq!((s.memory_entries, s.memory_bytes, s.evictions), (0, 0, 0));
}

/// Threads released together ask for one module; returns the engine's stats.
fn load_from_threads(engine: &Engine, wasm: &[u8], threads: usize) -> CacheStats {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                load_and_instantiate(engine, wasm);
            });
        }
    });
    engine.cache_stats()
}

#[test]
fn a_module_asked_for_by_many_threads_at_once_is_compiled_once() {
    // Large enough that compiling takes long after all threads have arrived.
    let wasm = generated(30, 400);
    let s = load_from_threads(&engine(EngineConfig::default()), &wasm, 8);
    assert_eq!(s.misses, 1, "{s:?}");
    assert_eq!(s.memory_hits + s.waited, 7, "{s:?}");

    // With a disk cache: compiled once, written once; then read from disk once.
    let dir = tempfile::tempdir().unwrap();
    let s = load_from_threads(&disk_engine(dir.path()), &wasm, 8);
    assert_eq!((s.misses, s.disk_writes), (1, 1), "{s:?}");
    let s = load_from_threads(&disk_engine(dir.path()), &wasm, 8);
    assert_eq!((s.misses, s.disk_hits, s.disk_writes), (0, 1, 0), "{s:?}");
    assert_eq!(s.memory_hits + s.waited, 7, "{s:?}");
}

fn assert_not_membrane(result: Result<impl std::fmt::Debug, membrane_host::Error>) {
    let err = result.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Abi(AbiViolation::NotMembrane)),
        "{err:?}"
    );
}

/// A module that compiles but fails the ABI check takes no room in either cache, by
/// a load or by a precompile: nothing in memory, no file on disk, and every later load
/// compiles it again and is refused again.
#[test]
fn a_module_refused_by_the_abi_check_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let engine = disk_engine(dir.path());
    let wasm = generated_not_membrane(100, 4);
    for _ in 0..2 {
        assert_not_membrane(engine.load(&wasm));
        assert_not_membrane(engine.precompile(&wasm));
    }
    let s = engine.cache_stats();
    assert_eq!(answers(s), (0, 0, 0, 4), "{s:?}");
    assert_eq!(
        (s.memory_entries, s.memory_bytes, s.disk_writes),
        (0, 0, 0),
        "{s:?}"
    );
    assert!(artifacts(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

/// Threads asking at once for a module the ABI check refuses: it is still compiled
/// once, every thread gets the refusal, and nothing is kept.
#[test]
fn a_refused_module_asked_for_by_many_threads_at_once_is_compiled_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = disk_engine(dir.path());
    let wasm = generated_not_membrane(101, 400);
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                assert_not_membrane(engine.load(&wasm));
            });
        }
    });
    let s = engine.cache_stats();
    assert_eq!((s.misses, s.waited), (1, 7), "{s:?}");
    assert_eq!((s.memory_entries, s.disk_writes), (0, 0), "{s:?}");
    assert!(artifacts(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn a_new_engine_loads_from_disk_what_an_earlier_one_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest_bytes("echo");
    {
        let first = disk_engine(dir.path());
        first.load(&wasm).unwrap();
        let s = first.cache_stats();
        assert_eq!(answers(s), (0, 0, 0, 1));
        assert_eq!(s.disk_writes, 1);
    }
    assert_eq!(artifacts(dir.path()).len(), 1);

    // As after a restart.
    let second = disk_engine(dir.path());
    let mut echo = second
        .load(&wasm)
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap()
        .instantiate(())
        .unwrap();
    assert_eq!(echo.call_raw("echo", b"from disk").unwrap(), b"from disk");
    let s = second.cache_stats();
    assert_eq!(answers(s), (0, 1, 0, 0));
    assert_eq!(
        (s.disk_writes, s.disk_rejects, s.disk_incompatible),
        (0, 0, 0)
    );

    // Engines whose settings change the code do not share artifacts.
    let other = engine(
        EngineConfig::default()
            .cache_dir(Some(dir.path().to_path_buf()))
            .nan_canonicalization(true),
    );
    other.load(&wasm).unwrap();
    assert_eq!(answers(other.cache_stats()), (0, 0, 0, 1));
    assert_eq!(artifacts(dir.path()).len(), 2);
}

/// The artifact file of `wasm` as made by an engine with `config` (in a scratch
/// directory).
fn artifact_of(wasm: &[u8], config: EngineConfig) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(config.cache_dir(Some(dir.path().to_path_buf())));
    engine.load(wasm).unwrap();
    fs::read(only_artifact(dir.path())).unwrap()
}

/// Damages the artifact a first engine wrote, then checks that a second engine refuses
/// it without deserializing it (no disk hit, and no refusal by wasmtime: the
/// integrity check caught it), recompiles, replaces the file with one a third engine
/// loads, and never fails the load.
fn check_damage(what: &str, damage: impl FnOnce(&Path, &[u8])) {
    check_damage_with(what, EngineConfig::default(), damage);
}

/// [`check_damage`] with engines of `config` (and the directory as `cache_dir`).
fn check_damage_with(what: &str, config: EngineConfig, damage: impl FnOnce(&Path, &[u8])) {
    let dir = tempfile::tempdir().unwrap();
    let disk_engine = |dir: &Path| engine(config.clone().cache_dir(Some(dir.to_path_buf())));
    let wasm = generated(40, 8);
    disk_engine(dir.path()).load(&wasm).unwrap();
    let path = only_artifact(dir.path());
    damage(&path, &wasm);

    let second = disk_engine(dir.path());
    load_and_instantiate(&second, &wasm);
    let s = second.cache_stats();
    assert_eq!(answers(s), (0, 0, 0, 1), "{what}: {s:?}");
    assert_eq!(
        (s.disk_rejects, s.disk_incompatible, s.disk_writes),
        (1, 0, 1),
        "{what}: {s:?}"
    );
    assert_eq!(only_artifact(dir.path()), path, "{what}");

    let third = disk_engine(dir.path());
    load_and_instantiate(&third, &wasm);
    let s = third.cache_stats();
    assert_eq!(answers(s), (0, 1, 0, 0), "{what}: replaced: {s:?}");
    assert_eq!(s.disk_rejects, 0, "{what}: replaced: {s:?}");
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes);
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_truncated_file_is_recompiled() {
    check_damage("truncated to half", |path, _| {
        let len = fs::metadata(path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
    check_damage("last byte cut", |path, _| {
        rewrite(path, |b| {
            b.pop();
        })
    });
    check_damage("header only", |path, _| rewrite(path, |b| b.truncate(88)));
    check_damage("header cut", |path, _| rewrite(path, |b| b.truncate(40)));
}

#[test]
fn a_file_with_a_flipped_byte_is_recompiled() {
    check_damage("flipped byte in the artifact", |path, _| {
        rewrite(path, |b| {
            let middle = b.len() / 2;
            b[middle] ^= 0x01;
        })
    });
    check_damage("flipped byte in the header's key", |path, _| {
        rewrite(path, |b| b[20] ^= 0x80)
    });
    check_damage("flipped byte in the digest", |path, _| {
        rewrite(path, |b| b[60] ^= 0x04)
    });
    check_damage("byte appended", |path, _| rewrite(path, |b| b.push(0)));
}

#[test]
fn an_empty_file_is_recompiled() {
    check_damage("empty", |path, _| {
        File::create(path).unwrap();
    });
}

#[test]
fn a_file_of_random_bytes_is_recompiled() {
    check_damage("random bytes", |path, _| {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let bytes: Vec<u8> = (0..65_536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(path, bytes).unwrap();
    });
    check_damage("a wasmtime artifact without membrane header", |path, _| {
        rewrite(path, |b| {
            b.drain(..88);
        })
    });
}

/// Makes a FIFO at `path` (with the `mkfifo` command: no `unsafe` in tests).
#[cfg(unix)]
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Opening a FIFO for reading waits for a writer, so one put where an artifact belongs
/// would block every load of that module for ever. It is refused without waiting,
/// and replaced. Were a load to block, a watchdog releases it after a while (opening
/// a FIFO for reading and writing does not wait) and the test fails.
#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_an_artifact_is_refused_without_blocking() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    let released = AtomicBool::new(false);
    let (finished, watch) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        check_damage("a fifo", |path, _| {
            fs::remove_file(path).unwrap();
            mkfifo(path);
            let path = path.to_path_buf();
            let released = &released;
            s.spawn(move || {
                if watch.recv_timeout(Duration::from_secs(30))
                    == Err(mpsc::RecvTimeoutError::Timeout)
                {
                    released.store(true, Ordering::Relaxed);
                    drop(OpenOptions::new().read(true).write(true).open(&path));
                }
            });
        });
        drop(finished);
    });
    assert!(
        !released.load(Ordering::Relaxed),
        "a load waited for a writer on the fifo"
    );
}

/// A directory where an artifact belongs is refused as not a regular file (it used to
/// be opened and fail to read, an i/o error), and left alone with what it holds.
#[cfg(unix)]
#[test]
fn a_directory_in_place_of_an_artifact_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = generated(42, 4);
    disk_engine(dir.path()).load(&wasm).unwrap();
    let path = only_artifact(dir.path());
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), b"not the cache's").unwrap();

    let engine = disk_engine(dir.path());
    load_and_instantiate(&engine, &wasm);
    let s = engine.cache_stats();
    assert_eq!(answers(s), (0, 0, 0, 1), "{s:?}");
    // Refused, then not replaceable: the rename over a directory fails.
    assert_eq!(
        (s.disk_rejects, s.disk_writes, s.disk_errors),
        (1, 0, 1),
        "{s:?}"
    );
    assert_eq!(fs::read(path.join("inside")).unwrap(), b"not the cache's");
}

/// A file whose metadata claims a size larger than memory (a sparse file of 1 TiB)
/// under an unlimited disk budget: refused for its size before anything is allocated
/// for it (it used to abort the process, failing to allocate a buffer of that size),
/// recompiled and replaced.
#[test]
fn an_artifact_claiming_a_huge_size_is_refused_before_allocating() {
    check_damage_with(
        "a sparse file of 1 TiB",
        EngineConfig::default().disk_cache_size(u64::MAX),
        |path, _| {
            OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(1 << 40)
                .unwrap();
        },
    );
}

#[test]
fn an_artifact_of_another_engine_configuration_is_recompiled() {
    // Sound files, renamed: each is refused by the key in its header before
    // wasmtime sees it. (Wasmtime alone would accept the NaN one: it does not check
    // that setting.)
    check_damage(
        "artifact of an engine with NaN canonicalization",
        |path, wasm| {
            let foreign = artifact_of(wasm, EngineConfig::default().nan_canonicalization(true));
            fs::write(path, foreign).unwrap();
        },
    );
    check_damage("artifact of an engine without fuel", |path, wasm| {
        let foreign = artifact_of(wasm, EngineConfig::default().fuel(None));
        fs::write(path, foreign).unwrap();
    });
    check_damage("artifact of another module", |path, _| {
        fs::write(
            path,
            artifact_of(&generated(41, 8), EngineConfig::default()),
        )
        .unwrap();
    });
}

/// Environment variables that turn [`two_processes_fill_one_directory`] into one of
/// the two writers.
const CHILD_DIR: &str = "MEMBRANE_TEST_CACHE_CHILD_DIR";
const CHILD_GO: &str = "MEMBRANE_TEST_CACHE_CHILD_GO";

/// The module both processes load: large enough that their compilations overlap.
fn shared_module() -> Vec<u8> {
    generated(50, 300)
}

#[test]
fn two_processes_fill_one_directory() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        // A child: wait for the start signal, then load through the shared directory.
        let go = PathBuf::from(std::env::var_os(CHILD_GO).unwrap());
        let deadline = SystemTime::now() + Duration::from_secs(60);
        while !go.exists() {
            assert!(SystemTime::now() < deadline, "no start signal");
            std::thread::sleep(Duration::from_millis(1));
        }
        let engine = disk_engine(Path::new(&dir));
        load_and_instantiate(&engine, &shared_module());
        let s = engine.cache_stats();
        println!("child stats: {s:?}");
        assert_eq!(s.misses + s.disk_hits, 1, "{s:?}");
        assert_eq!((s.disk_rejects, s.disk_errors), (0, 0), "{s:?}");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "cache::two_processes_fill_one_directory",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR, &cache)
                .env(CHILD_GO, &go)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    File::create(&go).unwrap().flush().unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The child really ran the test (a filter matching nothing also succeeds).
        assert!(stdout.contains("child stats:"), "{stdout}");
    }

    // One artifact, no temporary file left, and it loads.
    assert_eq!(artifacts(&cache).len(), 1, "{:?}", names(&cache));
    assert_eq!(names(&cache).len(), 1, "{:?}", names(&cache));
    let engine = disk_engine(&cache);
    load_and_instantiate(&engine, &shared_module());
    assert_eq!(answers(engine.cache_stats()), (0, 1, 0, 0));
}

fn total_size(dir: &Path) -> u64 {
    artifacts(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn the_disk_cache_stays_within_its_budget_removing_oldest_used_first() {
    let modules: Vec<Vec<u8>> = (0..5).map(|i| generated(60 + i, 16)).collect();
    let size = artifact_of(&modules[0], EngineConfig::default()).len() as u64;
    let budget = size * 5 / 2; // two files fit, three do not
    let dir = tempfile::tempdir().unwrap();
    // No memory cache: every load goes to the disk.
    let engine = engine(
        EngineConfig::default()
            .cache_dir(Some(dir.path().to_path_buf()))
            .disk_cache_size(budget)
            .cache_size(0),
    );
    let load = |i: usize| {
        load_and_instantiate(&engine, &modules[i]);
        assert!(total_size(dir.path()) <= budget, "after module {i}");
        // Modification times must differ from one use to the next.
        std::thread::sleep(Duration::from_millis(30));
    };
    load(0);
    load(1);
    load(0); // a disk hit renews 0
    load(2); // removes 1, the oldest used
    let s = engine.cache_stats();
    assert_eq!(answers(s), (0, 1, 0, 3));
    assert_eq!((s.disk_evictions, s.disk_writes), (1, 3));
    assert_eq!(artifacts(dir.path()).len(), 2);

    load(0);
    load(2);
    assert_eq!(answers(engine.cache_stats()), (0, 3, 0, 3));
    load(1); // compiled again, removes 0
    load(3);
    load(4);
    let s = engine.cache_stats();
    assert_eq!(answers(s), (0, 3, 0, 6));
    assert_eq!(s.disk_evictions, 4);
    assert_eq!(artifacts(dir.path()).len(), 2);
    // The last two written are the ones kept.
    load(3);
    load(4);
    assert_eq!(answers(engine.cache_stats()), (0, 5, 0, 6));
}

#[test]
fn an_artifact_larger_than_the_disk_budget_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        EngineConfig::default()
            .cache_dir(Some(dir.path().to_path_buf()))
            .disk_cache_size(1000),
    );
    let wasm = generated(70, 16);
    load_and_instantiate(&engine, &wasm);
    assert_eq!(engine.cache_stats().disk_writes, 0);
    assert!(artifacts(dir.path()).is_empty());
    // Asked for explicitly, it is an error.
    let err = engine.precompile(&wasm).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config { .. }), "{err}");
}

#[test]
fn stale_temporary_files_are_ignored_and_cleaned_and_other_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, age: Duration| {
        let f = File::create(dir.path().join(name)).unwrap();
        f.set_len(4096).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    };
    // Left by a writer that crashed an hour ago, one being written now, and a file
    // that is none of the cache's business (old, so first in line if it were counted).
    write(".tmp-4242-0-00000000", Duration::from_secs(3600));
    write(".tmp-4243-7-0000abcd", Duration::ZERO);
    write("notes.txt", Duration::from_secs(7200));

    let engine = engine(
        EngineConfig::default()
            .cache_dir(Some(dir.path().to_path_buf()))
            .disk_cache_size(1 << 20),
    );
    assert_eq!(names(dir.path()), [".tmp-4243-7-0000abcd", "notes.txt"]);
    for seed in 80..84 {
        load_and_instantiate(&engine, &generated(seed, 4));
    }
    let s = engine.cache_stats();
    assert_eq!((s.misses, s.disk_writes, s.disk_rejects), (4, 4, 0));
    let names = names(dir.path());
    assert!(names.contains(&"notes.txt".to_string()), "{names:?}");
    assert!(
        names.contains(&".tmp-4243-7-0000abcd".to_string()),
        "{names:?}"
    );
}

#[test]
fn precompile_fills_the_caches_and_returns_the_artifact() {
    let wasm = generated(90, 8);

    // Memory only.
    let memory = engine(EngineConfig::default());
    assert_eq!(memory.precompile(&wasm).unwrap(), None);
    memory.load(&wasm).unwrap();
    assert_eq!(answers(memory.cache_stats()), (1, 0, 0, 1));

    // On disk, from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("module.wasm");
    fs::write(&file, &wasm).unwrap();
    let cache = dir.path().join("cache");
    let engine = disk_engine(&cache);
    let path = engine.precompile_file(&file).unwrap().unwrap();
    assert_eq!(artifacts(&cache), vec![path.clone()]);

    // Gone from disk but still in memory: precompile writes it again.
    fs::remove_file(&path).unwrap();
    assert_eq!(engine.precompile(&wasm).unwrap(), Some(path.clone()));
    assert!(path.exists());
    let s = engine.cache_stats();
    assert_eq!(answers(s), (1, 0, 0, 1));
    assert_eq!(s.disk_writes, 2);

    // What was shipped loads without compiling.
    let shipped = tempfile::tempdir().unwrap();
    fs::copy(&path, shipped.path().join(path.file_name().unwrap())).unwrap();
    let elsewhere = disk_engine(shipped.path());
    load_and_instantiate(&elsewhere, &wasm);
    assert_eq!(answers(elsewhere.cache_stats()), (0, 1, 0, 0));

    // The ABI is checked as by a load.
    let plain = wat::parse_str("(module (memory (export \"memory\") 1))").unwrap();
    let err = engine.precompile(&plain).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Abi(AbiViolation::NotMembrane)),
        "{err}"
    );
}

#[test]
fn an_unusable_cache_directory_leaves_loads_working_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, b"in the way").unwrap();
    let engine = disk_engine(&not_a_dir.join("cache"));
    let wasm = generated(95, 4);
    load_and_instantiate(&engine, &wasm);
    load_and_instantiate(&engine, &wasm);
    let s = engine.cache_stats();
    assert_eq!(answers(s), (1, 0, 0, 1));
    assert_eq!((s.disk_writes, s.disk_errors), (0, 1));
    // Asked for explicitly, writing to it is an error.
    let err = engine.precompile(&wasm).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err}");
}
