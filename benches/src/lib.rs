//! Shared parts of the benchmarks: the built guest examples and the bare-wasmtime
//! floor that every call bench is measured against in the same run (SPEC §10).

use std::path::PathBuf;

use membrane_host::{Engine, HostError, HostFunctions};
use wasmtime::{Caller, Linker, Memory, Store, TypedFunc};

/// The wasm bytes of a built guest example (`$MEMBRANE_GUESTS_DIR`, else `target/guests`).
pub fn guest(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("MEMBRANE_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask bench`", path.display()))
}

/// The WAT of the floors' bump allocator, exported as `alloc`: `(len, reset) -> ptr`,
/// growing memory when an allocation does not fit (0 when it cannot).
macro_rules! bump_alloc {
    () => {
        r#"  (global $bump (mut i32) (i32.const 1024))
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
"#
    };
}

/// The floor guest: a bump allocator and functions that do the same work as the
/// membrane guests without any envelope.
pub const FLOOR_WAT: &str = concat!(
    r#"
(module
  (import "host" "add" (func $add (param i32 i32) (result i64)))
  (import "host" "echo_bytes" (func $echo_bytes (param i32 i32) (result i64)))
  (memory (export "memory") 1)
"#,
    bump_alloc!(),
    r#"  ;; echo: returns its input where it lies
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  ;; passes its input to the host `echo_bytes` and returns the host's response where
  ;; the host wrote it
  (func (export "through_host") (param $ptr i32) (param $len i32) (result i64)
    (call $echo_bytes (local.get $ptr) (local.get $len)))
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
"#
);

/// What the floor's host function needs, resolved once (as membrane does).
#[derive(Default)]
struct FloorData {
    exports: Option<std::sync::Arc<FloorExports>>,
}

/// The floor guest's memory and allocation entry.
type FloorExports = (Memory, TypedFunc<(u32, u32), u32>);

/// The floor guest instance with its store and exports.
pub struct Floor {
    store: Store<FloorData>,
    memory: Memory,
    alloc: TypedFunc<(u32, u32), u32>,
    echo: TypedFunc<(u32, u32), u64>,
    through_host: TypedFunc<(u32, u32), u64>,
    sum_n: TypedFunc<u32, u32>,
    fuel: Option<u64>,
}

impl Floor {
    /// The floor guest instantiated on `engine`'s wasmtime engine.
    pub fn new(engine: &Engine) -> Floor {
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
            .unwrap()
            .func_wrap(
                "host",
                "echo_bytes",
                |mut caller: Caller<'_, FloorData>, ptr: u32, len: u32| -> wasmtime::Result<u64> {
                    // What a bytes host function does with a bare import: read the
                    // request where it lies, make the response (here a copy), place it
                    // in guest memory through the allocation entry.
                    let exports = caller.data().exports.clone().unwrap();
                    let (memory, alloc) = (&exports.0, &exports.1);
                    let response = memory
                        .data(&caller)
                        .get(ptr as usize..ptr as usize + len as usize)
                        .ok_or_else(|| wasmtime::Error::msg("oob"))?
                        .to_vec();
                    let out = alloc.call(&mut caller, (len, 0))?;
                    memory.data_mut(&mut caller)[out as usize..out as usize + len as usize]
                        .copy_from_slice(&response);
                    Ok((u64::from(out) << 32) | u64::from(len))
                },
            )
            .unwrap();
        let mut store = Store::new(wt, FloorData::default());
        let fuel = engine.config().limits.fuel;
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
            through_host: instance.get_typed_func(&mut store, "through_host").unwrap(),
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

    /// Echo without an envelope: allocation call, copy in, call, copy out.
    pub fn echo(&mut self, input: &[u8]) -> Vec<u8> {
        self.arm();
        let len = input.len() as u32;
        let ptr = self.alloc.call(&mut self.store, (len, 1)).unwrap();
        self.memory.data_mut(&mut self.store)[ptr as usize..(ptr + len) as usize]
            .copy_from_slice(input);
        let packed = self.echo.call(&mut self.store, (ptr, len)).unwrap();
        let (p, l) = ((packed >> 32) as usize, packed as u32 as usize);
        self.memory.data(&self.store)[p..p + l].to_vec()
    }

    /// The checksummed floor: [`Floor::echo`] plus the least a checksummed protocol must
    /// do, a CRC-32 (crc32fast) over the input before copying it in and over the output
    /// after copying it out. Returns the output and its checksum.
    pub fn echo_checksummed(&mut self, input: &[u8]) -> (Vec<u8>, u32) {
        let crc_in = crc32fast::hash(input);
        let output = self.echo(input);
        let crc_out = crc32fast::hash(&output);
        (output, crc_in ^ crc_out)
    }

    /// Bytes through a bare host import: copy in, the guest passes them to the host's
    /// `echo_bytes`, which copies them back into guest memory, copy out.
    pub fn through_host(&mut self, input: &[u8]) -> Vec<u8> {
        self.arm();
        let len = input.len() as u32;
        let ptr = self.alloc.call(&mut self.store, (len, 1)).unwrap();
        self.memory.data_mut(&mut self.store)[ptr as usize..(ptr + len) as usize]
            .copy_from_slice(input);
        let packed = self.through_host.call(&mut self.store, (ptr, len)).unwrap();
        let (p, l) = ((packed >> 32) as usize, packed as u32 as usize);
        self.memory.data(&self.store)[p..p + l].to_vec()
    }

    /// `n` bare guest→host calls.
    pub fn sum_n(&mut self, n: u32) -> u32 {
        self.arm();
        self.alloc.call(&mut self.store, (0, 1)).unwrap();
        self.sum_n.call(&mut self.store, n).unwrap()
    }
}

/// The host functions the `host-fns` guest imports, doing the least work each: what the
/// guest→host call benches measure is the crossing, not the function.
pub fn host_fns_host() -> HostFunctions<()> {
    let mut host = HostFunctions::new();
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
    })
    .register_bytes(
        "echo_bytes",
        |_state: &mut (), input: &[u8]| -> Result<Vec<u8>, HostError> { Ok(input.to_vec()) },
    );
    host
}

/// The floor of a call between two modules: two instances of a bare guest joined by a
/// host import that copies the bytes across (`relay` in A calls the import `peer.call`,
/// which writes its request into B through B's allocation entry, calls B's `echo`, and
/// writes B's output into A through A's allocation entry), with no envelope, no context
/// and no lookup.
pub const PAIR_WAT: &str = concat!(
    r#"
(module
  (import "peer" "call" (func $peer (param i32 i32) (result i64)))
  (memory (export "memory") 1)
"#,
    bump_alloc!(),
    r#"  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func (export "relay") (param $ptr i32) (param $len i32) (result i64)
    (call $peer (local.get $ptr) (local.get $len)))
)
"#
);

/// The exports a pair-floor call uses, of one instance.
#[derive(Clone)]
struct PairExports {
    memory: Memory,
    alloc: TypedFunc<(u32, u32), u32>,
    echo: TypedFunc<(u32, u32), u64>,
}

/// What A's store carries: B (its store and exports) and A's own exports.
#[derive(Default)]
struct PairData {
    peer: Option<Box<(Store<PairData>, PairExports)>>,
    own: Option<PairExports>,
}

/// Two bare instances, A and B, joined by a host import: the floor of a call from one
/// module to another.
pub struct PairFloor {
    store: Store<PairData>,
    a: PairExports,
    relay: TypedFunc<(u32, u32), u64>,
    fuel: Option<u64>,
}

impl PairFloor {
    /// The pair instantiated on `engine`'s wasmtime engine.
    pub fn new(engine: &Engine) -> PairFloor {
        let wt = engine.wasmtime();
        let module = wasmtime::Module::new(wt, wat::parse_str(PAIR_WAT).unwrap()).unwrap();
        let mut linker = Linker::new(wt);
        linker
            .func_wrap(
                "peer",
                "call",
                |mut caller: Caller<'_, PairData>, ptr: u32, len: u32| -> wasmtime::Result<u64> {
                    let Some(mut peer) = caller.data_mut().peer.take() else {
                        return Err(wasmtime::Error::msg("no peer"));
                    };
                    let a = caller.data().own.clone().unwrap();
                    let (b_store, b) = &mut *peer;
                    // A's request into B (one copy), B's call.
                    let request = a
                        .memory
                        .data(&caller)
                        .get(ptr as usize..ptr as usize + len as usize)
                        .ok_or_else(|| wasmtime::Error::msg("oob"))?;
                    let at = b.alloc.call(&mut *b_store, (len, 1))?;
                    b.memory.data_mut(&mut *b_store)[at as usize..(at + len) as usize]
                        .copy_from_slice(request);
                    let packed = b.echo.call(&mut *b_store, (at, len))?;
                    let (p, l) = ((packed >> 32) as usize, packed as u32);
                    // B's output into A (one copy).
                    let out = a.alloc.call(&mut caller, (l, 0))?;
                    let (a_mem, b_mem) = (a.memory.data_mut(&mut caller), b.memory.data(&*b_store));
                    a_mem[out as usize..out as usize + l as usize]
                        .copy_from_slice(&b_mem[p..p + l as usize]);
                    caller.data_mut().peer = Some(peer);
                    Ok((u64::from(out) << 32) | u64::from(l))
                },
            )
            .unwrap();
        let fuel = engine.config().limits.fuel;
        let instance = |store: &mut Store<PairData>| {
            if let Some(f) = fuel {
                store.set_fuel(f).unwrap();
            }
            store.set_epoch_deadline(u64::MAX / 2);
            let instance = linker.instantiate(&mut *store, &module).unwrap();
            let exports = PairExports {
                memory: instance.get_memory(&mut *store, "memory").unwrap(),
                alloc: instance.get_typed_func(&mut *store, "alloc").unwrap(),
                echo: instance.get_typed_func(&mut *store, "echo").unwrap(),
            };
            store.data_mut().own = Some(exports.clone());
            (instance, exports)
        };
        let mut b_store = Store::new(wt, PairData::default());
        let (_, b) = instance(&mut b_store);
        let mut store = Store::new(wt, PairData::default());
        let (a_instance, a) = instance(&mut store);
        store.data_mut().peer = Some(Box::new((b_store, b)));
        let relay = a_instance.get_typed_func(&mut store, "relay").unwrap();
        PairFloor {
            store,
            a,
            relay,
            fuel,
        }
    }

    /// Bytes from the host into A, from A into B and back, and out: what a call from one
    /// module to another's echo does, minus the envelopes.
    pub fn relay(&mut self, input: &[u8]) -> Vec<u8> {
        // Each of the two calls is armed as a membrane call is (fuel, deadline).
        if let Some(f) = self.fuel {
            self.store.set_fuel(f).unwrap();
            if let Some(peer) = &mut self.store.data_mut().peer {
                peer.0.set_fuel(f).unwrap();
            }
        }
        self.store.set_epoch_deadline(u64::MAX / 2);
        let len = input.len() as u32;
        let ptr = self.a.alloc.call(&mut self.store, (len, 1)).unwrap();
        self.a.memory.data_mut(&mut self.store)[ptr as usize..(ptr + len) as usize]
            .copy_from_slice(input);
        let packed = self.relay.call(&mut self.store, (ptr, len)).unwrap();
        let (p, l) = ((packed >> 32) as usize, packed as u32 as usize);
        self.a.memory.data(&self.store)[p..p + l].to_vec()
    }
}

/// Two bare modules of the bus floor: `send_n` calls the host import `send` `n` times
/// with the same bytes; `on_message` takes a message and does nothing with it.
pub const BUS_WAT: &str = concat!(
    r#"
(module
  (import "host" "send" (func $send (param i32 i32)))
  (memory (export "memory") 1)
"#,
    bump_alloc!(),
    r#"  (func (export "send_n") (param $n i32) (param $ptr i32) (param $len i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (call $send (local.get $ptr) (local.get $len))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))
  (func (export "on_message") (param $ptr i32) (param $len i32) (result i64) (i64.const 0))
)
"#
);

/// A bare instance of [`BUS_WAT`] with its exports.
struct BusModule {
    store: Store<BusData>,
    memory: Memory,
    alloc: TypedFunc<(u32, u32), u32>,
    send_n: TypedFunc<(u32, u32, u32), ()>,
    on_message: TypedFunc<(u32, u32), u64>,
}

#[derive(Default)]
struct BusData {
    memory: Option<Memory>,
    /// Messages sent, each copied out of the sender's memory.
    queue: std::collections::VecDeque<Vec<u8>>,
}

/// The floor of the message bus: module A sends messages to the host (a bare import
/// copying each into a queue), and the host delivers each to module B (allocation call,
/// copy in, call): what membrane's bus does minus envelopes, postcard, bounds and
/// locks.
pub struct BusFloor {
    a: BusModule,
    b: BusModule,
    fuel: Option<u64>,
}

impl BusFloor {
    /// The two modules instantiated on `engine`'s wasmtime engine.
    pub fn new(engine: &Engine) -> BusFloor {
        let wt = engine.wasmtime();
        let module = wasmtime::Module::new(wt, wat::parse_str(BUS_WAT).unwrap()).unwrap();
        let mut linker = Linker::new(wt);
        linker
            .func_wrap(
                "host",
                "send",
                |mut caller: Caller<'_, BusData>, ptr: u32, len: u32| -> wasmtime::Result<()> {
                    let memory = caller.data().memory.unwrap();
                    let message = memory
                        .data(&caller)
                        .get(ptr as usize..ptr as usize + len as usize)
                        .ok_or_else(|| wasmtime::Error::msg("oob"))?
                        .to_vec();
                    caller.data_mut().queue.push_back(message);
                    Ok(())
                },
            )
            .unwrap();
        let fuel = engine.config().limits.fuel;
        let make = || {
            let mut store = Store::new(wt, BusData::default());
            if let Some(f) = fuel {
                store.set_fuel(f).unwrap();
            }
            store.set_epoch_deadline(u64::MAX / 2);
            let instance = linker.instantiate(&mut store, &module).unwrap();
            let memory = instance.get_memory(&mut store, "memory").unwrap();
            store.data_mut().memory = Some(memory);
            BusModule {
                memory,
                alloc: instance.get_typed_func(&mut store, "alloc").unwrap(),
                send_n: instance.get_typed_func(&mut store, "send_n").unwrap(),
                on_message: instance.get_typed_func(&mut store, "on_message").unwrap(),
                store,
            }
        };
        BusFloor {
            a: make(),
            b: make(),
            fuel,
        }
    }

    /// A sends `payload` `n` times (one call), then each message is delivered to B (one
    /// call each). Returns how many were delivered.
    pub fn send_and_deliver(&mut self, n: u32, payload: &[u8]) -> u32 {
        let len = payload.len() as u32;
        let a = &mut self.a;
        if let Some(f) = self.fuel {
            a.store.set_fuel(f).unwrap();
        }
        let ptr = a.alloc.call(&mut a.store, (len, 1)).unwrap();
        a.memory.data_mut(&mut a.store)[ptr as usize..(ptr + len) as usize]
            .copy_from_slice(payload);
        a.send_n.call(&mut a.store, (n, ptr, len)).unwrap();
        let mut delivered = 0;
        while let Some(message) = a.store.data_mut().queue.pop_front() {
            let b = &mut self.b;
            // Each delivery is armed as a membrane call is.
            if let Some(f) = self.fuel {
                b.store.set_fuel(f).unwrap();
            }
            b.store.set_epoch_deadline(u64::MAX / 2);
            let len = message.len() as u32;
            let at = b.alloc.call(&mut b.store, (len, 1)).unwrap();
            b.memory.data_mut(&mut b.store)[at as usize..(at + len) as usize]
                .copy_from_slice(&message);
            b.on_message.call(&mut b.store, (at, len)).unwrap();
            delivered += 1;
        }
        delivered
    }
}
