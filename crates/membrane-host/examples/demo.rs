//! The membrane demo (`cargo xtask demo`): an echo, a typed call, a host function,
//! limits being hit with their clean errors, then a runtime of several modules that call
//! each other, all on the built guest examples.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use membrane_host::{
    Engine, EngineConfig, Grants, HostError, HostFunctions, InstancePre, ModuleSpec, Runtime,
    RuntimeConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Item<'a> {
    name: &'a str,
    unit_cents: u64,
    quantity: u32,
}

#[derive(Serialize)]
struct Order<'a> {
    id: u64,
    items: Vec<Item<'a>>,
    discount_percent: Option<u8>,
}

#[derive(Deserialize, Debug)]
#[allow(dead_code)] // read through Debug
struct Receipt {
    id: u64,
    total_cents: u64,
    names: Vec<String>,
}

/// One stroke of the ping/pong rally.
#[derive(Deserialize, Debug)]
struct Hit {
    module: String,
    caller: Option<String>,
    request_id: u64,
    depth: u32,
}

fn guests_dir() -> PathBuf {
    std::env::var_os("MEMBRANE_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = guests_dir();
    let engine = Engine::new(
        EngineConfig::default()
            .timeout(Some(Duration::from_millis(250)))
            .max_memory(32 << 20),
    )?;
    println!("membrane demo: guests from {}\n", dir.display());

    // 1. Echo: raw bytes in, the same bytes out.
    let echo = engine.load_file(dir.join("echo.wasm"))?;
    let mut echo = echo.prepare(&HostFunctions::new())?.instantiate(())?;
    let out = echo.call_raw("echo", b"hello, membrane")?;
    println!("1. echo            -> {:?}", String::from_utf8_lossy(&out));
    let out = echo.call_raw("reverse", b"hello, membrane")?;
    println!("   reverse         -> {:?}", String::from_utf8_lossy(&out));

    // 2. A typed call: a Rust struct in, a Rust struct out (postcard under the hood).
    let typed = engine.load_file(dir.join("typed.wasm"))?;
    let mut typed = typed.prepare(&HostFunctions::new())?.instantiate(())?;
    let order = Order {
        id: 1,
        items: vec![
            Item {
                name: "pear",
                unit_cents: 150,
                quantity: 4,
            },
            Item {
                name: "apple",
                unit_cents: 99,
                quantity: 10,
            },
        ],
        discount_percent: Some(10),
    };
    let receipt: Receipt = typed.call("total", &order)?;
    println!("2. typed total     -> {receipt:?}");
    let err = typed.call::<_, i64>("divide", &(1i64, 0i64)).unwrap_err();
    println!("   typed divide/0  -> error: {err}");

    // 3. Host functions: the guest calls back into the host, with host state.
    let mut host = HostFunctions::<Vec<String>>::new();
    host.register("add", |ctx, (a, b): (u32, u32)| -> Result<u32, HostError> {
        ctx.state_mut().push(format!("add({a}, {b})"));
        a.checked_add(b).ok_or_else(|| HostError::from("overflow"))
    })
    .register("log_line", |ctx, line: String| -> Result<(), HostError> {
        ctx.state_mut().push(format!("log: {line}"));
        Ok(())
    })
    .register("always_fails", |_ctx, _: String| -> Result<(), HostError> {
        Err("the host says no".into())
    })
    .register("call_back", |ctx, n: u32| -> Result<u32, HostError> {
        Ok(ctx.call::<_, u32>("double", &n)?)
    })
    .register_raw("echo_bytes", |_ctx, bytes| Ok(bytes.to_vec()));
    let host_fns = engine.load_file(dir.join("host_fns.wasm"))?;
    let mut guest = host_fns.prepare(&host)?.instantiate(Vec::new())?;
    let sum: u32 = guest.call("sum_list", &vec![1u32, 2, 3])?;
    println!(
        "3. host add        -> sum_list([1, 2, 3]) = {sum}; host saw {:?}",
        guest.state()
    );
    let seen: String = guest.call("try_failing", "please")?;
    println!("   failing host fn -> the guest received \"{seen}\"");

    // 4. Limits: each stops the guest with a clean, matchable error; the host lives on.
    let spin = engine.load_file(dir.join("spin.wasm"))?;
    let mut spin = spin.prepare(&HostFunctions::new())?.instantiate(())?;
    let start = Instant::now();
    let err = spin.call::<_, u64>("spin", &()).unwrap_err();
    println!("4. endless loop    -> {err} (after {:?})", start.elapsed());
    let err = spin.call::<_, u64>("count", &1u64).unwrap_err();
    println!("   same instance   -> {err}");
    let hog = engine.load_file(dir.join("hog.wasm"))?;
    let mut hog = hog.prepare(&HostFunctions::new())?.instantiate(())?;
    let err = hog.call::<_, u64>("hog", &()).unwrap_err();
    println!("   memory hog      -> {err}");
    let panics = engine.load_file(dir.join("panics.wasm"))?;
    let mut panics = panics.prepare(&HostFunctions::new())?.instantiate(())?;
    let err = panics.call::<_, ()>("boom", "demo").unwrap_err();
    println!(
        "   guest panic     -> {}",
        err.to_string().replace('\n', " ")
    );
    let deep = engine.load_file(dir.join("deep.wasm"))?;
    let mut deep = deep.prepare(&HostFunctions::new())?.instantiate(())?;
    let err = deep.call::<_, u64>("deep", &0u64).unwrap_err();
    println!("   recursion       -> {err}");

    let out = echo.call_raw("echo", b"still alive")?;
    println!(
        "\nand the host is fine: echo -> {:?}",
        String::from_utf8_lossy(&out)
    );

    runtime_of_many_modules(&engine, &dir)
}

/// 5. A runtime of several modules calling each other through the host.
fn runtime_of_many_modules(
    engine: &Engine,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let load = |name: &str| -> Result<InstancePre<()>, membrane_host::Error> {
        engine
            .load_file(dir.join(format!("{name}.wasm")))?
            .prepare(&HostFunctions::new())
    };
    let runtime = Runtime::new(RuntimeConfig::default());
    // Pools with room for a rally to the depth limit (16: 8 instances of each).
    // ping may list the runtime's modules (its `list` export imports that service).
    runtime.add(
        "ping",
        load("ping")?,
        ModuleSpec::pooled(8).grants(Grants::none().discover()),
    )?;
    runtime.add("pong", load("pong")?, ModuleSpec::pooled(8))?;
    for stage in ["tokenize", "count", "report"] {
        runtime.add(stage, load(stage)?, ModuleSpec::pooled(2))?;
    }
    runtime.add("user", load("callable_user")?, ModuleSpec::persistent())?;

    // A rally: ping and pong call each other through the runtime, one level deeper each
    // time, all within the request the host's call started.
    println!("\n5. a runtime of several modules");
    let rally: Vec<Hit> = runtime.call("ping", "rally", &3u32)?;
    for hit in &rally {
        println!(
            "   rally           -> {} at depth {}, called by {}, request {}",
            hit.module,
            hit.depth,
            hit.caller.as_deref().unwrap_or("the host"),
            hit.request_id
        );
    }
    // Past the depth limit (16 on this engine), the chain is refused cleanly.
    let err = runtime
        .call::<_, Vec<Hit>>("ping", "rally", &40u32)
        .unwrap_err();
    println!("   rally of 41     -> {err}");

    // A pipeline of three modules: tokenize -> count -> report.
    let report: String = runtime.call(
        "tokenize",
        "process",
        "the quick brown fox jumps over the lazy dog; the end",
    )?;
    for line in report.lines().take(4) {
        println!("   pipeline        -> {line}");
    }

    // A callee's failure reaches its caller as a code, never as a trap of the caller.
    let unit = membrane_codec::to_payload(&())?;
    for function in ["fail", "trap", "spin"] {
        let (code, message): (u32, Vec<u8>) =
            runtime.call("ping", "probe", &("pong", function, &unit))?;
        println!(
            "   ping -> pong.{function:<5} -> code {} {}",
            membrane_host::ErrorCode(code),
            String::from_utf8_lossy(&message)
        );
    }

    // A host callable: a closure the module calls by a random id the host hands it.
    let rate = runtime.register_callable(|ctx, amount: f64| -> Result<f64, HostError> {
        println!(
            "   callable        <- {amount} from {}",
            ctx.caller.as_deref().unwrap_or("the host")
        );
        Ok(amount * 0.92)
    })?;
    let converted: f64 = runtime.call("user", "convert", &(rate.get(), 100.0))?;
    println!("   callable        -> 100 converts to {converted:.2}");
    runtime.unregister_callable(rate)?;
    let err = runtime
        .call::<_, f64>("user", "convert", &(rate.get(), 100.0))
        .unwrap_err();
    println!("   unregistered    -> {err}");

    for module in runtime.modules() {
        let c = &module.counters;
        println!(
            "   {:<8} {} calls: {} ok, {} guest errors, {} traps, {} limits",
            module.name, c.calls, c.ok, c.guest_errors, c.traps, c.limits_hit
        );
    }
    Ok(())
}
