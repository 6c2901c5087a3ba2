//! Callgrind driver for per-call instruction counts (deterministic, unlike wall-clock
//! numbers on a shared machine):
//! `cg <echo|floor-echo|host|floor-host|bytes|floor-bytes|runtime|g2g|floor-g2g|bus|floor-bus> <size> <iterations>`
//! (`runtime`: echo through `Runtime::call_raw`, a persistent module; `g2g`: the host
//! calls `ping.relay`, which calls `echo.echo` of another module through the runtime;
//! `floor-g2g`: the same with `membrane_benches::PairFloor`; `bus`: 10 messages of
//! `size` bytes from one module to another's handler, `floor-bus` with
//! `membrane_benches::BusFloor`).
//!
//! Only `run` is meant to be counted; run it for N and 2N iterations and divide the
//! difference by N:
//!
//! ```text
//! MEMBRANE_GUESTS_DIR=target/guests valgrind --tool=callgrind --toggle-collect='*cg::run*' \
//!     target/release/examples/cg echo 64 200
//! ```
//!
//! `host` calls `sum_to(size)`: `size` calls of the host's `add`, as `floor-host` does;
//! `bytes` passes `size` bytes through the host's bytes function `echo_bytes` and back
//! (`through_host`), as `floor-bytes` does through a bare import. With
//! `CG_MAP=<file>` set, the guest's compiled functions are listed there (address, length,
//! name) and its code is written next to it, to name JIT addresses in a profile.
//! The floor guest is `membrane_benches::Floor`, the one `benches/calls.rs` uses.
#![allow(missing_docs, clippy::unwrap_used)]
use membrane_host::{Engine, EngineConfig, HostFunctions};
use std::hint::black_box;

use membrane_benches::{Floor, PairFloor, guest, host_fns_host};

#[inline(never)]
fn run(n: usize, f: &mut dyn FnMut()) {
    for _ in 0..n {
        f();
    }
}

fn dump_map(module: &membrane_host::Module) {
    if let Some(path) = std::env::var_os("CG_MAP") {
        use std::io::Write;
        let m = module.wasmtime();
        let base = m.text().as_ptr() as usize;
        let mut bin = std::ffi::OsString::from(&path);
        bin.push(format!(".{base:x}.bin"));
        std::fs::write(bin, m.text()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        for func in m.functions() {
            writeln!(
                f,
                "{:x} {:x} {}",
                base + func.offset,
                func.len,
                func.name.unwrap_or_else(|| format!("{:?}", func.index))
            )
            .unwrap();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args[1].as_str();
    let size: usize = args[2].parse().unwrap();
    let iters: usize = args[3].parse().unwrap();
    let engine = Engine::new(EngineConfig::default().timeout(None)).unwrap();
    let input: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    match mode {
        "echo" => {
            let module = engine.load(&guest("echo")).unwrap();
            dump_map(&module);
            let mut instance = module
                .prepare(&HostFunctions::new())
                .unwrap()
                .instantiate(())
                .unwrap();
            assert_eq!(instance.call_raw("echo", &input).unwrap(), input);
            run(iters, &mut || {
                black_box(instance.call_raw("echo", black_box(&input)).unwrap());
            });
        }
        "floor-echo" => {
            let mut floor = Floor::new(&engine);
            assert_eq!(floor.echo(&input), input);
            run(iters, &mut || {
                black_box(floor.echo(black_box(&input)));
            });
        }
        "host" => {
            let host = host_fns_host();
            let module = engine.load(&guest("host_fns")).unwrap();
            dump_map(&module);
            let mut instance = module.prepare(&host).unwrap().instantiate(()).unwrap();
            let n = size as u32;
            let sum = (0..n).sum::<u32>();
            assert_eq!(instance.call::<_, u32>("sum_to", &n).unwrap(), sum);
            run(iters, &mut || {
                assert_eq!(
                    instance.call::<_, u32>("sum_to", black_box(&n)).unwrap(),
                    sum
                );
            });
        }
        "bytes" => {
            let host = host_fns_host();
            let module = engine.load(&guest("host_fns")).unwrap();
            dump_map(&module);
            let mut instance = module.prepare(&host).unwrap().instantiate(()).unwrap();
            assert_eq!(instance.call_raw("through_host", &input).unwrap(), input);
            run(iters, &mut || {
                black_box(
                    instance
                        .call_raw("through_host", black_box(&input))
                        .unwrap(),
                );
            });
        }
        "runtime" => {
            let pre = engine
                .load(&guest("echo"))
                .unwrap()
                .prepare(&HostFunctions::<()>::new())
                .unwrap();
            let runtime = membrane_host::Runtime::new(membrane_host::RuntimeConfig::default());
            runtime
                .add("echo", pre, membrane_host::ModuleSpec::persistent())
                .unwrap();
            assert_eq!(runtime.call_raw("echo", "echo", &input).unwrap(), input);
            run(iters, &mut || {
                black_box(runtime.call_raw("echo", "echo", black_box(&input)).unwrap());
            });
        }
        "g2g" => {
            let load = |name: &str| {
                engine
                    .load(&guest(name))
                    .unwrap()
                    .prepare(&HostFunctions::<()>::new())
                    .unwrap()
            };
            let runtime = membrane_host::Runtime::new(membrane_host::RuntimeConfig::default());
            let spec = membrane_host::ModuleSpec::persistent();
            // ping's `list` export imports the module list: granted.
            let ping = spec
                .clone()
                .grants(membrane_host::Grants::none().discover());
            runtime.add("ping", load("ping"), ping).unwrap();
            runtime.add("echo", load("pong"), spec).unwrap();
            assert_eq!(runtime.call_raw("ping", "relay", &input).unwrap(), input);
            run(iters, &mut || {
                black_box(
                    runtime
                        .call_raw("ping", "relay", black_box(&input))
                        .unwrap(),
                );
            });
        }
        "bus" => {
            // One iteration: 10 messages of `size` bytes from one chat module to
            // another, delivered to its handler (`benches/services.rs`'s bus bench).
            let runtime = membrane_host::Runtime::new(membrane_host::RuntimeConfig::default());
            let spec =
                membrane_host::ModuleSpec::persistent().grants(membrane_host::Grants::none().bus());
            for name in ["sender", "receiver"] {
                let pre = engine
                    .load(&guest("chat"))
                    .unwrap()
                    .prepare(&HostFunctions::<()>::new())
                    .unwrap();
                runtime.add(name, pre, spec.clone()).unwrap();
            }
            let request = ("receiver", "bench", 10u32, &input);
            run(iters, &mut || {
                let sent: u32 = runtime
                    .call("sender", "burst", black_box(&request))
                    .unwrap();
                let report = runtime.run_until_idle(u64::MAX);
                assert_eq!((sent, report.delivered), (10, 10));
            });
        }
        "floor-bus" => {
            let mut floor = membrane_benches::BusFloor::new(&engine);
            run(iters, &mut || {
                assert_eq!(floor.send_and_deliver(10, black_box(&input)), 10);
            });
        }
        "floor-g2g" => {
            let mut floor = PairFloor::new(&engine);
            assert_eq!(floor.relay(&input), input);
            run(iters, &mut || {
                black_box(floor.relay(black_box(&input)));
            });
        }
        "floor-bytes" => {
            let mut floor = Floor::new(&engine);
            assert_eq!(floor.through_host(&input), input);
            run(iters, &mut || {
                black_box(floor.through_host(black_box(&input)));
            });
        }
        "floor-host" => {
            let mut floor = Floor::new(&engine);
            let n = size as u32;
            assert_eq!(floor.sum_n(n), (0..n).sum::<u32>());
            run(iters, &mut || {
                black_box(floor.sum_n(black_box(n)));
            });
        }
        _ => panic!("mode"),
    }
}
