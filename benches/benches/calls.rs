//! Call benchmarks against a bare-wasmtime floor measured in the same run (SPEC §10).
//!
//! - `echo/<size>`: membrane `call_raw("echo")` on the echo guest (allocation call,
//!   input envelope written and checksummed, call, guest verifies the checksum through
//!   the host, output envelope verified and copied out) against `floor/<size>`: a
//!   hand-written WAT guest doing the same work with no envelope (allocation call, copy
//!   in, typed call, copy out).
//!   `floor-checksummed/<size>`: the same floor plus the least a checksummed protocol
//!   must do: crc32fast over the input before copying it in and over the output after
//!   copying it out.
//! - `host_call`: 1000 guest→host calls from the host-fns guest (`sum_to(1000)`: `add`
//!   with `(acc, i)` for each `i`) against a WAT guest doing the same with a bare host
//!   import (8-byte request read from guest memory, 4-byte response written through the
//!   guest's allocation entry).
//! - `host_bytes/<size>`: the `host-fns` guest's `through_host` (its input to the bytes
//!   host function `echo_bytes` and back as its output) against the floor's
//!   `through_host`, the same through a bare host import.
//! - `timeout/64B`: echo 64 B on an engine with the default 5 s timeout (deadline armed
//!   on the engine's clock at each call, epoch callback once per tick) against the same
//!   on an engine without timeout (`none/64B`).
//! - `read/*/64KiB`: a 64 KiB output read by `call_raw`, by `call_with` copying it, and
//!   by `call_with` summing it in place.
//! - `threads/echo/{1,2}x64B`: echo 64 B on one thread, and on two threads with an
//!   instance each; the throughputs' ratio is the scaling over cores. `threads/floor/..`:
//!   the same with the bare floor, how far the machine scales at all.
//! - `instantiate`: a fresh membrane instance against a bare `InstancePre::instantiate`
//!   of the same module, with the on-demand and with the pooling allocator.
//! - `runtime/{runtime,instance}/64B`: echo 64 B through `Runtime::call_raw` (a
//!   persistent module: name lookup, lease of its one instance, counters) against
//!   `Instance::call_raw` on an instance of the same module.
//! - `guest_to_guest/{membrane,floor}/<size>`: the host calls `ping.relay` through the
//!   runtime, which calls `echo.echo` of another module (`membrane_guest::call_bytes`:
//!   request envelope, routing, the callee's input envelope, its verified output copied
//!   back as the response) against two bare instances joined by a host import that
//!   copies the bytes across (`PairFloor`). `ping.relay` hands the callee's output on
//!   as its own (`membrane_guest::forward`); `membrane-copy` is `ping.relay_copy`, which
//!   copies it once into its output (`call_bytes_with(.., Output::copy_of)`).
//!
//! Needs the guest examples: `cargo xtask bench` builds them first.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use membrane_benches::{Floor, PairFloor, guest, host_fns_host};
use membrane_host::{
    Engine, EngineConfig, Grants, HostFunctions, ModuleSpec, Runtime, RuntimeConfig,
};
use wasmtime::{Linker, Store};

const SIZES: [(usize, &str); 5] = [
    (0, "0B"),
    (64, "64B"),
    (1024, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

fn config() -> EngineConfig {
    // No timeout: the floor store does not run the epoch callback either.
    EngineConfig::default().timeout(None)
}

fn echo(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let module = engine.load(&guest("echo")).unwrap();
    let mut instance = module
        .prepare(&HostFunctions::new())
        .unwrap()
        .instantiate(())
        .unwrap();
    let mut floor = Floor::new(&engine);
    let mut group = c.benchmark_group("echo");
    for (size, label) in SIZES {
        let input: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(instance.call_raw("echo", &input).unwrap(), input);
        assert_eq!(floor.echo(&input), input);
        group.throughput(Throughput::Bytes(size.max(1) as u64));
        group.bench_with_input(BenchmarkId::new("membrane", label), &input, |b, input| {
            b.iter(|| black_box(instance.call_raw("echo", black_box(input)).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("floor", label), &input, |b, input| {
            b.iter(|| black_box(floor.echo(black_box(input))))
        });
        group.bench_with_input(
            BenchmarkId::new("floor-checksummed", label),
            &input,
            |b, input| b.iter(|| black_box(floor.echo_checksummed(black_box(input)))),
        );
    }
    group.finish();
}

fn host_call(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let host = host_fns_host();
    let module = engine.load(&guest("host_fns")).unwrap();
    let mut instance = module.prepare(&host).unwrap().instantiate(()).unwrap();
    let mut floor = Floor::new(&engine);
    const N: u32 = 1000;
    assert_eq!(
        instance.call::<_, u32>("sum_to", &N).unwrap(),
        (0..N).sum::<u32>()
    );
    assert_eq!(floor.sum_n(N), (0..N).sum::<u32>());
    let mut group = c.benchmark_group("host_call");
    group.throughput(Throughput::Elements(u64::from(N)));
    group.bench_function("membrane/1000", |b| {
        b.iter(|| black_box(instance.call::<_, u32>("sum_to", black_box(&N)).unwrap()))
    });
    group.bench_function("floor/1000", |b| {
        b.iter(|| black_box(floor.sum_n(black_box(N))))
    });
    group.finish();
}

/// Bytes through a host function: the `host-fns` guest's `through_host` passes its input
/// to the bytes host function `echo_bytes` (`register_bytes`, returning a copy) and
/// returns the response as its output; the floor does the same through a bare import.
fn host_bytes(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let mut instance = engine
        .load(&guest("host_fns"))
        .unwrap()
        .prepare(&host_fns_host())
        .unwrap()
        .instantiate(())
        .unwrap();
    let mut floor = Floor::new(&engine);
    let mut group = c.benchmark_group("host_bytes");
    for (size, label) in &SIZES[1..] {
        let input: Vec<u8> = (0..*size).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(instance.call_raw("through_host", &input).unwrap(), input);
        assert_eq!(floor.through_host(&input), input);
        group.throughput(Throughput::Bytes(*size as u64));
        group.bench_with_input(BenchmarkId::new("membrane", label), &input, |b, input| {
            b.iter(|| black_box(instance.call_raw("through_host", black_box(input)).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("floor", label), &input, |b, input| {
            b.iter(|| black_box(floor.through_host(black_box(input))))
        });
    }
    group.finish();
}

fn instantiate(c: &mut Criterion) {
    let mut group = c.benchmark_group("instantiate");
    for (pooling, label) in [(false, "on-demand"), (true, "pooling")] {
        let engine = Engine::new(config().pooling(pooling)).unwrap();
        let module = engine.load(&guest("echo")).unwrap();
        let pre = module.prepare(&HostFunctions::new()).unwrap();
        group.bench_function(BenchmarkId::new("membrane", label), |b| {
            b.iter(|| black_box(pre.instantiate(()).unwrap()))
        });
        // The floor: the same module, the same engine, bare wasmtime with the intrinsics
        // linked as no-ops.
        let mut linker = Linker::<()>::new(engine.wasmtime());
        linker
            .func_wrap("membrane", "crc32", |_: u32, _: u32, _: u32| 0u32)
            .unwrap();
        linker
            .func_wrap("membrane", "panic", |_: u32, _: u32| {})
            .unwrap();
        let bare = linker.instantiate_pre(module.wasmtime()).unwrap();
        group.bench_function(BenchmarkId::new("floor", label), |b| {
            b.iter(|| {
                let mut store = Store::new(engine.wasmtime(), ());
                let instance = bare.instantiate(&mut store).unwrap();
                black_box((instance, store))
            })
        });
    }
    group.finish();
}

fn timeout(c: &mut Criterion) {
    let input: Vec<u8> = (0..64).map(|i| (i * 7 + 3) as u8).collect();
    let mut group = c.benchmark_group("timeout");
    for (label, config) in [("default", EngineConfig::default()), ("none", config())] {
        let engine = Engine::new(config).unwrap();
        let mut instance = engine
            .load(&guest("echo"))
            .unwrap()
            .prepare(&HostFunctions::new())
            .unwrap()
            .instantiate(())
            .unwrap();
        assert_eq!(instance.call_raw("echo", &input).unwrap(), input);
        group.bench_with_input(BenchmarkId::new(label, "64B"), &input, |b, input| {
            b.iter(|| black_box(instance.call_raw("echo", black_box(input)).unwrap()))
        });
    }
    group.finish();
}

/// The three ways of reading a 64 KiB output: `call_raw` (copied out and verified in one
/// pass), `call_with` copying it (verified in place, then copied: two passes), and
/// `call_with` reading it in place (verified in place only).
fn read(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let mut instance = engine
        .load(&guest("echo"))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap()
        .instantiate(())
        .unwrap();
    let input: Vec<u8> = (0..64 << 10).map(|i| (i * 7 + 3) as u8).collect();
    let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
    assert_eq!(instance.call_raw("echo", &input).unwrap(), input);
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("call_raw/64KiB", |b| {
        b.iter(|| black_box(instance.call_raw("echo", black_box(&input)).unwrap()))
    });
    group.bench_function("call_with-to_vec/64KiB", |b| {
        b.iter(|| {
            black_box(
                instance
                    .call_with("echo", black_box(&input), <[u8]>::to_vec)
                    .unwrap(),
            )
        })
    });
    group.bench_function("call_with-sum/64KiB", |b| {
        b.iter(|| black_box(instance.call_with("echo", black_box(&input), sum).unwrap()))
    });
    group.finish();
}

/// Echo 64 B from one thread, and from two threads at once on two instances of one
/// engine: an iteration is one call per thread, so the two-thread throughput over the
/// one-thread one is the scaling.
fn threads(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let pre = engine
        .load(&guest("echo"))
        .unwrap()
        .prepare(&HostFunctions::new())
        .unwrap();
    let input: Vec<u8> = (0..64).map(|i| (i * 7 + 3) as u8).collect();
    let mut instances = [pre.instantiate(()).unwrap(), pre.instantiate(()).unwrap()];
    let mut floors = [Floor::new(&engine), Floor::new(&engine)];
    for instance in &mut instances {
        assert_eq!(instance.call_raw("echo", &input).unwrap(), input);
    }
    for floor in &mut floors {
        assert_eq!(floor.echo(&input), input);
    }
    let mut group = c.benchmark_group("threads");
    for n in [1usize, 2] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("echo", format!("{n}x64B")), |b| {
            b.iter_custom(|iters| {
                on_threads(&mut instances[..n], iters, |instance| {
                    black_box(instance.call_raw("echo", black_box(&input)).unwrap());
                })
            })
        });
        // The same with the bare floor: how far this machine scales at all.
        group.bench_function(BenchmarkId::new("floor", format!("{n}x64B")), |b| {
            b.iter_custom(|iters| {
                on_threads(&mut floors[..n], iters, |floor| {
                    black_box(floor.echo(black_box(&input)));
                })
            })
        });
    }
    group.finish();
}

/// Runs `iters` calls of `call` on each of `workers`, one thread each, started
/// together; the batch lasts as long as its slowest thread.
fn on_threads<W: Send>(
    workers: &mut [W],
    iters: u64,
    call: impl Fn(&mut W) + Sync,
) -> std::time::Duration {
    let start = std::sync::Barrier::new(workers.len());
    std::thread::scope(|s| {
        let running: Vec<_> = workers
            .iter_mut()
            .map(|worker| {
                let (start, call) = (&start, &call);
                s.spawn(move || {
                    start.wait();
                    let t = std::time::Instant::now();
                    for _ in 0..iters {
                        call(worker);
                    }
                    t.elapsed()
                })
            })
            .collect();
        running
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    })
}

fn runtime(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let pre = engine
        .load(&guest("echo"))
        .unwrap()
        .prepare(&HostFunctions::<()>::new())
        .unwrap();
    let mut instance = pre.instantiate(()).unwrap();
    let runtime = Runtime::new(RuntimeConfig::default());
    runtime.add("echo", pre, ModuleSpec::persistent()).unwrap();
    let input: Vec<u8> = (0..64).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(runtime.call_raw("echo", "echo", &input).unwrap(), input);
    assert_eq!(instance.call_raw("echo", &input).unwrap(), input);
    let mut group = c.benchmark_group("runtime");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("runtime/64B", |b| {
        b.iter(|| black_box(runtime.call_raw("echo", "echo", black_box(&input)).unwrap()))
    });
    group.bench_function("instance/64B", |b| {
        b.iter(|| black_box(instance.call_raw("echo", black_box(&input)).unwrap()))
    });
    group.finish();
}

/// A call from one module to another through the runtime, against two bare instances
/// joined by a host import.
fn guest_to_guest(c: &mut Criterion) {
    let engine = Engine::new(config()).unwrap();
    let load = |name: &str| {
        engine
            .load(&guest(name))
            .unwrap()
            .prepare(&HostFunctions::<()>::new())
            .unwrap()
    };
    let runtime = Runtime::new(RuntimeConfig::default());
    runtime
        .add(
            "ping",
            load("ping"),
            ModuleSpec::persistent().grants(Grants::none().discover()),
        )
        .unwrap();
    runtime
        .add("echo", load("pong"), ModuleSpec::persistent())
        .unwrap();
    let mut floor = PairFloor::new(&engine);
    let mut group = c.benchmark_group("guest_to_guest");
    for (size, label) in &SIZES[..4] {
        let input: Vec<u8> = (0..*size).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(runtime.call_raw("ping", "relay", &input).unwrap(), input);
        assert_eq!(floor.relay(&input), input);
        group.throughput(Throughput::Bytes((*size).max(1) as u64));
        group.bench_with_input(BenchmarkId::new("membrane", label), &input, |b, input| {
            b.iter(|| black_box(runtime.call_raw("ping", "relay", black_box(input)).unwrap()))
        });
        group.bench_with_input(
            BenchmarkId::new("membrane-copy", label),
            &input,
            |b, input| {
                b.iter(|| {
                    black_box(
                        runtime
                            .call_raw("ping", "relay_copy", black_box(input))
                            .unwrap(),
                    )
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("floor", label), &input, |b, input| {
            b.iter(|| black_box(floor.relay(black_box(input))))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    echo,
    host_call,
    host_bytes,
    timeout,
    read,
    threads,
    instantiate,
    runtime,
    guest_to_guest
);
criterion_main!(benches);
