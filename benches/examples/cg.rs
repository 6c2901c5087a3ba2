//! Callgrind driver for per-call instruction counts (deterministic, unlike wall-clock
//! numbers on a shared machine): `cg <echo|floor-echo|host|floor-host> <size> <iterations>`.
//!
//! Only `run` is meant to be counted; run it for N and 2N iterations and divide the
//! difference by N:
//!
//! ```text
//! MEMBRANE_GUESTS_DIR=target/guests valgrind --tool=callgrind --toggle-collect='*cg::run*' \
//!     target/release/examples/cg echo 64 200
//! ```
//!
//! `host` calls `sum_list` on a list of `size` ones (one host call per element). With
//! `CG_MAP=<file>` set, the guest's compiled functions are listed there (address, length,
//! name) and its code is written next to it, to name JIT addresses in a profile.
//! The floor guest is the one of `benches/calls.rs`.
#![allow(missing_docs, clippy::unwrap_used)]
use membrane_host::{Engine, EngineConfig, HostError, HostFunctions};
use std::hint::black_box;
use std::path::PathBuf;
use wasmtime::{Caller, Linker, Memory, Store, TypedFunc};

fn guest(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(std::env::var_os("MEMBRANE_GUESTS_DIR").unwrap());
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap()
}

/// The floor guest: a bump allocator and functions that do the same work as the
/// membrane guests without any envelope.
const FLOOR_WAT: &str = r#"
(module
  (import "host" "add" (func $add (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (func $alloc (export "alloc") (param $len i32) (param $reset i32) (result i32)
    (local $p i32) (local $end i32)
    (if (local.get $reset) (then (global.set $bump (i32.const 1024))))
    (local.set $p (global.get $bump))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    ;; grow memory when the allocation does not fit
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.set $bump (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  ;; echo: returns its input where it lies
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  ;; calls the host `add` $n times, passing (acc, i) as 8 bytes, reading back 4 bytes
  (func (export "sum_n") (param $n i32) (result i32)
    (local $i i32) (local $acc i32) (local $req i32) (local $res i64)
    (local.set $req (call $alloc (i32.const 8) (i32.const 0)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (local.get $req) (local.get $acc))
        (i32.store offset=4 (local.get $req) (local.get $i))
        (local.set $res (call $add (local.get $req) (i32.const 8)))
        (local.set $acc (i32.load (i32.wrap_i64 (i64.shr_u (local.get $res) (i64.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc))
)
"#;

/// What the floor's host function needs, resolved once (as membrane does).
#[derive(Default)]
struct FloorData {
    exports: Option<std::sync::Arc<FloorExports>>,
}

/// The floor guest's memory and allocation entry.
type FloorExports = (Memory, TypedFunc<(u32, u32), u32>);

struct Floor {
    store: Store<FloorData>,
    memory: Memory,
    alloc: TypedFunc<(u32, u32), u32>,
    echo: TypedFunc<(u32, u32), u64>,
    sum_n: TypedFunc<u32, u32>,
    fuel: Option<u64>,
}

impl Floor {
    fn new(engine: &Engine) -> Floor {
        let wt = engine.wasmtime();
        let module = wasmtime::Module::new(wt, wat::parse_str(FLOOR_WAT).unwrap()).unwrap();
        let mut linker = Linker::new(wt);
        linker
            .func_wrap(
                "host",
                "add",
                |mut caller: Caller<'_, FloorData>, ptr: u32, len: u32| -> wasmtime::Result<u64> {
                    let exports = caller.data().exports.clone().unwrap();
                    let (memory, alloc) = (&exports.0, &exports.1);
                    let data = memory.data(&caller);
                    let req = data
                        .get(ptr as usize..(ptr + len) as usize)
                        .ok_or_else(|| wasmtime::Error::msg("oob"))?;
                    let a = u32::from_le_bytes(req[0..4].try_into().unwrap());
                    let b = u32::from_le_bytes(req[4..8].try_into().unwrap());
                    let sum = a.wrapping_add(b);
                    let out = alloc.call(&mut caller, (4, 0))?;
                    memory.data_mut(&mut caller)[out as usize..out as usize + 4]
                        .copy_from_slice(&sum.to_le_bytes());
                    Ok((u64::from(out) << 32) | 4)
                },
            )
            .unwrap();
        let mut store = Store::new(wt, FloorData::default());
        let fuel = engine.config().metering_limit;
        if let Some(f) = fuel {
            store.set_fuel(f).unwrap();
        }
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let alloc: TypedFunc<(u32, u32), u32> =
            instance.get_typed_func(&mut store, "alloc").unwrap();
        store.data_mut().exports = Some(std::sync::Arc::new((memory, alloc.clone())));
        Floor {
            memory,
            alloc,
            echo: instance.get_typed_func(&mut store, "echo").unwrap(),
            sum_n: instance.get_typed_func(&mut store, "sum_n").unwrap(),
            store,
            fuel,
        }
    }

    /// The same per-call work a membrane call does to the store, minus the envelope.
    fn arm(&mut self) {
        if let Some(f) = self.fuel {
            self.store.set_fuel(f).unwrap();
        }
        self.store.set_epoch_deadline(u64::MAX / 2);
    }

    fn echo(&mut self, input: &[u8]) -> Vec<u8> {
        self.arm();
        let len = input.len() as u32;
        let ptr = self.alloc.call(&mut self.store, (len, 1)).unwrap();
        self.memory.data_mut(&mut self.store)[ptr as usize..(ptr + len) as usize]
            .copy_from_slice(input);
        let packed = self.echo.call(&mut self.store, (ptr, len)).unwrap();
        let (p, l) = ((packed >> 32) as usize, packed as u32 as usize);
        self.memory.data(&self.store)[p..p + l].to_vec()
    }

    fn sum_n(&mut self, n: u32) -> u32 {
        self.arm();
        self.alloc.call(&mut self.store, (0, 1)).unwrap();
        self.sum_n.call(&mut self.store, n).unwrap()
    }
}

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
    let engine = Engine::new(EngineConfig {
        timeout: None,
        ..EngineConfig::default()
    })
    .unwrap();
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
            let mut host = HostFunctions::<()>::new();
            host.register(
                "add",
                |_ctx, (a, b): (u32, u32)| -> Result<u32, HostError> { Ok(a.wrapping_add(b)) },
            )
            .register("log_line", |_ctx, _: String| -> Result<(), HostError> {
                Ok(())
            })
            .register("always_fails", |_ctx, _: String| -> Result<(), HostError> {
                Err("no".into())
            })
            .register("call_back", |_ctx, n: u32| -> Result<u32, HostError> {
                Ok(n)
            });
            let module = engine.load(&guest("host_fns")).unwrap();
            dump_map(&module);
            let mut instance = module.prepare(&host).unwrap().instantiate(()).unwrap();
            let ones = vec![1u32; size];
            assert_eq!(
                instance.call::<_, u32>("sum_list", &ones).unwrap(),
                size as u32
            );
            run(iters, &mut || {
                assert_eq!(
                    instance
                        .call::<_, u32>("sum_list", black_box(&ones))
                        .unwrap(),
                    size as u32
                );
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
