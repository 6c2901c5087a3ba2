//! Module cache benches: loading a large (over 1 MiB) module by compiling it, from the
//! memory cache, and from the disk cache (`docs/benchmarks.md`, "Module cache").

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use membrane_host::{Engine, EngineConfig};

/// Size the generated module must reach.
const MIN_MODULE_SIZE: usize = 1 << 20;

/// A valid membrane module of at least [`MIN_MODULE_SIZE`] bytes: many functions with
/// long bodies of integer arithmetic (in the proportion of code to exports of a real
/// plugin: a few exports, much code behind them).
fn large_module() -> Vec<u8> {
    const FUNCTIONS: u64 = 700;
    const ROUNDS: u64 = 90;
    let mut wat = String::with_capacity(8 << 20);
    wat.push_str(
        r#"(module
  (memory (export "memory") 1)
  (func (export "__membrane_alloc") (param i32 i32) (result i32) i32.const 8)
  (func (export "__membrane_abi_v1"))
"#,
    );
    for f in 0..FUNCTIONS {
        wat.push_str(&format!(
            "  (func $f{f} (param i64 i64) (result i64) (local i64)\n    local.get 0 local.set 2\n"
        ));
        for r in 0..ROUNDS {
            let k = (f * ROUNDS + r).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            wat.push_str(&format!(
                "    local.get 2 i64.const {k} i64.mul local.get 1 i64.xor i64.const {} i64.rotl local.set 2\n",
                r % 63 + 1
            ));
        }
        if f > 0 {
            // Calls keep every function reachable and the code realistic.
            wat.push_str(&format!(
                "    local.get 2 local.get 2 local.get 1 call $f{} i64.add local.set 2\n",
                f - 1
            ));
        }
        wat.push_str("    local.get 2)\n");
    }
    wat.push_str(&format!(
        "  (func (export \"run\") (param i32 i32) (result i64)\n    local.get 0 i64.extend_i32_u local.get 1 i64.extend_i32_u call $f{})\n)",
        FUNCTIONS - 1
    ));
    let wasm = wat::parse_str(&wat).expect("generated module is valid");
    assert!(wasm.len() >= MIN_MODULE_SIZE, "{} bytes", wasm.len());
    wasm
}

/// A scratch cache directory removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn module_cache(c: &mut Criterion) {
    let wasm = large_module();
    let dir = ScratchDir(
        std::env::temp_dir().join(format!("membrane-bench-cache-{}", std::process::id())),
    );

    // No memory cache, no disk cache: every load compiles.
    let compiling = Engine::new(EngineConfig::default().cache_size(0)).unwrap();
    // Warm memory cache.
    let memory = Engine::new(EngineConfig::default()).unwrap();
    memory.load(&wasm).unwrap();
    // No memory cache, a filled disk cache: every load reads, verifies and
    // deserializes the artifact.
    let disk = Engine::new(
        EngineConfig::default()
            .cache_size(0)
            .cache_dir(Some(dir.0.clone())),
    )
    .unwrap();
    let artifact = disk.precompile(&wasm).unwrap().expect("artifact written");
    let artifact_len = std::fs::metadata(&artifact).unwrap().len();
    eprintln!(
        "module_cache: wasm {} bytes, artifact {artifact_len} bytes",
        wasm.len()
    );

    let mut g = c.benchmark_group("module_cache");
    g.throughput(Throughput::Bytes(wasm.len() as u64));
    // Compiling takes seconds: the fewest samples criterion allows.
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    g.bench_function("compile", |b| {
        b.iter(|| compiling.load(black_box(&wasm)).unwrap())
    });
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("disk_hit", |b| {
        b.iter(|| disk.load(black_box(&wasm)).unwrap())
    });
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("memory_hit", |b| {
        b.iter(|| memory.load(black_box(&wasm)).unwrap())
    });
    // The floor of a memory hit: hashing the bytes to find the module, which is most
    // of its cost.
    g.bench_function("blake3_of_the_bytes", |b| {
        b.iter(|| blake3::hash(black_box(&wasm)))
    });
    g.finish();

    // What was measured is what was meant to be.
    let compiled = compiling.cache_stats();
    assert_eq!(
        (compiled.memory_hits, compiled.disk_hits),
        (0, 0),
        "{compiled:?}"
    );
    let from_disk = disk.cache_stats();
    assert_eq!(
        from_disk.misses, 1,
        "only the precompile compiles: {from_disk:?}"
    );
    assert!(
        from_disk.disk_hits > 0 && from_disk.memory_hits == 0,
        "{from_disk:?}"
    );
    let from_memory = memory.cache_stats();
    assert_eq!(from_memory.misses, 1, "{from_memory:?}");
}

criterion_group!(benches, module_cache);
criterion_main!(benches);
