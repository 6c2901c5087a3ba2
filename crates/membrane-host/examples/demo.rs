//! The membrane demo (`cargo xtask demo`): an echo, a typed call, a host function,
//! limits being hit with their clean errors, a runtime of several modules that call
//! each other, then the host services (a chat room on the message bus, a counter kept in
//! a key-value store across a restart, logs, effects and assertions), all on the built
//! guest examples.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use membrane_host::kv::RedbKv;
use membrane_host::testing::{CapturingLog, RecordingEffects};
use membrane_host::{
    BusLimits, Engine, EngineConfig, ErrorCode, ErrorKind, Grants, HostError, HostFunctions,
    InstancePre, KvLimits, LogLevel, LogSource, ModuleSpec, Runtime, RuntimeConfig, Services,
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

    runtime_of_many_modules(&engine, &dir)?;
    host_services(&engine, &dir)
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

/// The code and message of a guest's error, or the error itself when it is another kind.
fn guest_error(e: membrane_host::Error) -> Result<(ErrorCode, String), membrane_host::Error> {
    match e.kind() {
        ErrorKind::Guest { code, message } => Ok((*code, message.clone())),
        _ => Err(e),
    }
}

/// Fails the demo with `what` unless `cond` holds.
fn check(cond: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if cond {
        Ok(())
    } else {
        Err(format!("demo check failed: {what}").into())
    }
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("membrane-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 6. The host services, each module getting those its grants name: the bus, kv, logs.
fn host_services(engine: &Engine, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let load = |name: &str| -> Result<InstancePre<()>, membrane_host::Error> {
        engine
            .load_file(dir.join(format!("{name}.wasm")))?
            .prepare(&HostFunctions::new())
    };
    println!("\n6. host services");
    chat_room(&load)?;
    counter_across_restarts(&load)?;
    notes(&load)
}

/// Loads a built guest by name, ready to add to a runtime.
type Load<'a> = dyn Fn(&str) -> Result<InstancePre<()>, membrane_host::Error> + 'a;

/// A chat room on the message bus: three members with message handlers and a lurker
/// without one, whose queues hold 4 messages each.
fn chat_room(load: &Load<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let runtime =
        Runtime::new(RuntimeConfig::default().bus(BusLimits::default().max_queue_messages(4)));
    for name in ["alice", "bob", "carol"] {
        runtime.add(
            name,
            load("chat")?,
            ModuleSpec::persistent().grants(Grants::none().bus()),
        )?;
    }
    runtime.add(
        "lurker",
        load("chat_listener")?,
        ModuleSpec::persistent().grants(Grants::none().bus()),
    )?;

    let reached: u32 = runtime.call("alice", "say", &"hi all")?;
    check(reached == 3, "alice's broadcast reaches the 3 others")?;
    let reached: u32 = runtime.call("bob", "say", &"hi alice")?;
    check(reached == 3, "bob's broadcast reaches the 3 others")?;
    let report = runtime.run_until_idle(100);
    check(
        report.idle && report.delivered == 4 && report.failures.is_empty(),
        "both lines delivered to the 2 handlers each",
    )?;
    println!(
        "   chat            -> alice and bob each broadcast a line to 3 members; run_until_idle: {} delivered, idle",
        report.delivered
    );
    for (member, expected) in [
        ("alice", &["bob: hi alice"][..]),
        ("bob", &["alice: hi all"]),
        ("carol", &["alice: hi all", "bob: hi alice"]),
    ] {
        let history: Vec<String> = runtime.call(member, "history", &())?;
        check(history == expected, "each member's history")?;
        println!("   {member:<15} -> {history:?}");
    }
    let lines: Vec<String> = runtime.call("lurker", "drain", &"chat")?;
    check(
        lines == ["alice: hi all", "bob: hi alice"],
        "the lurker's queue",
    )?;
    println!("   lurker drains   -> {lines:?}");

    // The lurker never drains on its own: its queue fills, and the sender is told.
    let (sent, code): (u32, u32) = runtime.call("alice", "flood", &10u32)?;
    check(
        (sent, ErrorCode(code)) == (4, ErrorCode::QUEUE_FULL),
        "the flood stops at the queues' 4 messages",
    )?;
    println!(
        "   slow consumer   -> alice floods 10 lines into queues of 4: {sent} sent, then {}",
        ErrorCode(code)
    );
    let report = runtime.run_until_idle(100);
    check(report.delivered == 8, "bob and carol took their 4 each")?;
    let e = runtime
        .call::<_, u32>("alice", "say", &"anyone?")
        .unwrap_err();
    let (code, message) = guest_error(e)?;
    check(
        code == ErrorCode::QUEUE_FULL && message.contains("lurker"),
        "a broadcast is refused while one queue is full",
    )?;
    println!(
        "   all or nothing  -> bob and carol caught up, the lurker did not: code {code} {message}"
    );
    let lines: Vec<String> = runtime.call("lurker", "drain", &"chat")?;
    let expected: Vec<String> = (0..4).map(|i| format!("alice: flood {i}")).collect();
    check(lines == expected, "nothing dropped, in order")?;
    let reached: u32 = runtime.call("alice", "say", &"anyone?")?;
    check(reached == 3, "room again")?;
    println!(
        "   lurker drains   -> {} lines, in order, none dropped; the broadcast now reaches {reached}",
        lines.len()
    );

    // The host is on the bus too: it pings bob, whose handler answers into the host's queue.
    runtime.send("bob", "ping", b"42")?;
    check(runtime.run_until_idle(100).idle, "the ping answered")?;
    let pong = runtime.recv("pong").ok_or("no pong")?;
    check(
        pong.from.as_deref() == Some("bob") && pong.payload == b"42",
        "bob's pong",
    )?;
    println!(
        "   host ping bob   -> pong from {} with {:?}",
        pong.from.as_deref().unwrap_or("the host"),
        String::from_utf8_lossy(&pong.payload)
    );

    // Two members that answer each other forever cannot hang the host.
    runtime.call::<_, ()>("alice", "rally", &"bob")?;
    let report = runtime.run_until_idle(50);
    check(
        !report.idle && report.delivered == 50,
        "the rally stops at the step budget",
    )?;
    println!(
        "   endless rally   -> run_until_idle(50): {} delivered, idle: {}",
        report.delivered, report.idle
    );
    Ok(())
}

/// A counter whose count is in a redb file: it outlives the runtime and the store.
fn counter_across_restarts(load: &Load<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let dir = TempDir::new()?;
    let path = dir.0.join("counter.redb");
    let open = |path: &std::path::Path| -> Result<Runtime, Box<dyn std::error::Error>> {
        let config = RuntimeConfig::default().kv(KvLimits::default().max_value_len(1 << 10));
        let runtime = Runtime::with_services(config, Services::new().kv(RedbKv::open(path)?));
        runtime.add(
            "counter",
            load("counter")?,
            ModuleSpec::persistent().grants(Grants::none().kv("counter")),
        )?;
        Ok(runtime)
    };

    let runtime = open(&path)?;
    runtime.call::<_, u64>("counter", "increment", &1u64)?;
    let count: u64 = runtime.call("counter", "increment", &1u64)?;
    check(count == 2, "two increments")?;
    drop(runtime); // and the store with it
    let runtime = open(&path)?;
    let reopened: u64 = runtime.call("counter", "get", &())?;
    check(reopened == 2, "the count survived the restart")?;
    let count: u64 = runtime.call("counter", "increment", &1u64)?;
    check(count == 3, "and goes on")?;
    println!(
        "   counter (kv)    -> 2 after two increments; restarted on the same file: {reopened}, then {count}"
    );

    let e = runtime
        .call::<_, ()>("counter", "put", &(b"big".to_vec(), vec![0u8; 4 << 10]))
        .unwrap_err();
    let (code, message) = guest_error(e)?;
    check(code == ErrorCode::QUOTA_EXCEEDED, "a value past the quota")?;
    println!("   4 KiB value     -> code {code} {message}");

    let e = runtime
        .add("counter2", load("counter")?, ModuleSpec::persistent())
        .unwrap_err();
    check(
        matches!(e.kind(), ErrorKind::NotGranted { grant: "kv", .. }),
        "a module granted nothing is refused",
    )?;
    println!("   no grants       -> {e}");
    Ok(())
}

/// Logs, effects and assertions, captured by the test doubles.
fn notes(load: &Load<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let log = CapturingLog::new();
    let effects = RecordingEffects::new().refuse("forbidden");
    let runtime = Runtime::with_services(
        RuntimeConfig::default(),
        Services::new().log(log.clone()).effects(effects.clone()),
    );
    runtime.add(
        "notes",
        load("notes")?,
        ModuleSpec::persistent().grants(Grants::none().log().clock().random().effects().debug()),
    )?;

    runtime.call::<_, u64>("notes", "note", &"buy milk")?;
    let lines = log.lines();
    let recorded = effects.recorded();
    check(
        lines.len() == 1
            && lines[0].level == LogLevel::Info
            && lines[0].message == "note: buy milk",
        "the note logged",
    )?;
    check(
        recorded.len() == 1
            && recorded[0].kind == "note.saved"
            && recorded[0].payload == b"buy milk",
        "the effect recorded",
    )?;
    println!(
        "   notes           -> logged {:?} at {:?}; effect {} recorded ({} bytes)",
        lines[0].message,
        lines[0].level,
        recorded[0].kind,
        recorded[0].payload.len()
    );

    let e = runtime
        .call::<_, ()>("notes", "emit", &("forbidden", vec![1u8]))
        .unwrap_err();
    let (code, message) = guest_error(e)?;
    check(
        code == ErrorCode::DENIED && effects.recorded().len() == 1,
        "a refused effect",
    )?;
    println!("   refused effect  -> code {code} {message}");

    let e = runtime
        .call::<_, i64>("notes", "check", &-5i64)
        .unwrap_err();
    let (code, message) = guest_error(e)?;
    let last = log.lines().pop().ok_or("no log line")?;
    check(
        code == ErrorCode::ASSERTION_FAILED
            && message.ends_with("value -5 is negative")
            && last.source == LogSource::Assertion,
        "a failed ensure!",
    )?;
    println!(
        "   ensure! fails   -> code {code} {message} (and logged as {:?})",
        last.source
    );
    Ok(())
}
