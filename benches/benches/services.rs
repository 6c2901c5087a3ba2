//! Benchmarks of the host services (SPEC §8), each against a floor measured in the same
//! run.
//!
//! - `bus/{membrane,floor}/64B`: messages between two modules, 64-byte payloads. The
//!   host calls `chat.burst`, which sends 100 messages to another `chat` module
//!   (`membrane_guest::bus::send`: a request envelope each, the runtime's bounded
//!   queue), then `Runtime::run_until_idle` delivers them to its message handler (one
//!   call each). The floor (`BusFloor`): a bare module calling a bare host import 100
//!   times, which copies each message into a queue, and one bare call of another module
//!   per message (allocation, copy in). Throughput in messages.
//! - `kv/{put,get}/{guest,direct}/{redb,memory}`: `counter.put` / `counter.get_raw`
//!   through a runtime (a guest call, the service import, the store) against the same
//!   operation made directly on the store from Rust, for `RedbKv` on a file (a put is a
//!   committed, fsynced transaction) and `MemoryKv` (the membrane overhead alone). Keys
//!   cycle over 1 000 8-byte keys, values are 64 bytes.
//!
//! Needs the guest examples: `cargo xtask bench` builds them first.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use membrane_benches::{BusFloor, guest};
use membrane_host::kv::{MemoryKv, RedbKv};
use membrane_host::{
    Engine, EngineConfig, Grants, HostFunctions, KvLimits, KvStore, ModuleSpec, Runtime,
    RuntimeConfig, Services,
};

/// Messages per iteration of the bus benchmarks.
const BURST: u32 = 100;

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).unwrap()
}

fn load(engine: &Engine, name: &str) -> membrane_host::InstancePre<()> {
    engine
        .load(&guest(name))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap()
}

fn bus(c: &mut Criterion) {
    let engine = engine();
    let payload = vec![0x5a; 64];
    let mut group = c.benchmark_group("bus");
    group.throughput(Throughput::Elements(u64::from(BURST)));

    let runtime = Runtime::new(RuntimeConfig::default());
    for name in ["sender", "receiver"] {
        runtime
            .add(
                name,
                load(&engine, "chat"),
                ModuleSpec::persistent().grants(Grants::none().bus()),
            )
            .unwrap();
    }
    let input = ("receiver", "bench", BURST, &payload);
    group.bench_function("membrane/64B", |b| {
        b.iter(|| {
            let sent: u32 = runtime.call("sender", "burst", &input).unwrap();
            let report = runtime.run_until_idle(u64::MAX);
            assert!(report.idle && report.failures.is_empty());
            assert_eq!((sent, report.delivered), (BURST, u64::from(BURST)));
        })
    });

    let mut floor = BusFloor::new(&engine);
    group.bench_function("floor/64B", |b| {
        b.iter(|| assert_eq!(floor.send_and_deliver(BURST, &payload), BURST))
    });
    group.finish();
}

/// 1 000 keys of 8 bytes.
fn keys() -> Vec<Vec<u8>> {
    (0u64..1_000).map(|i| i.to_be_bytes().to_vec()).collect()
}

fn kv(c: &mut Criterion) {
    let engine = engine();
    let dir = std::env::temp_dir().join(format!("membrane-bench-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let value = vec![0xa5u8; 64];
    let keys = keys();
    let limits = KvLimits::default();
    let stores: [(&str, Arc<dyn KvStore>); 2] = [
        (
            "redb",
            Arc::new(RedbKv::open(dir.join("bench.redb")).unwrap()),
        ),
        ("memory", Arc::new(MemoryKv::new())),
    ];
    let mut group = c.benchmark_group("kv");
    for (store_name, store) in stores {
        let runtime = Runtime::with_services(
            RuntimeConfig::default(),
            Services::new().kv_shared(store.clone()),
        );
        runtime
            .add(
                "counter",
                load(&engine, "counter"),
                ModuleSpec::persistent().grants(Grants::none().kv("counter")),
            )
            .unwrap();
        // The direct calls use another namespace of the same store.
        let mut i = 0;
        group.bench_function(format!("put/guest/{store_name}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                runtime
                    .call::<_, ()>("counter", "put", &(&keys[i], &value))
                    .unwrap();
            })
        });
        group.bench_function(format!("put/direct/{store_name}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                store.put("direct", &keys[i], &value, &limits).unwrap();
            })
        });
        group.bench_function(format!("get/guest/{store_name}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let got: Option<Vec<u8>> = runtime.call("counter", "get_raw", &keys[i]).unwrap();
                assert_eq!(got.as_deref(), Some(&value[..]));
            })
        });
        group.bench_function(format!("get/direct/{store_name}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let got = store.get("direct", &keys[i]).unwrap();
                assert_eq!(got.as_deref(), Some(&value[..]));
            })
        });
    }
    group.finish();
    drop(std::fs::remove_dir_all(&dir));
}

criterion_group!(benches, bus, kv);
criterion_main!(benches);
