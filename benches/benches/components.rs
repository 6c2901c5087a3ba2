//! Component calls against the core-module envelope call doing the same work, measured
//! in the same run (feature `component`: `cargo bench -p membrane-benches --features
//! component --bench components`).
//!
//! - `components/echo/<size>` (64 B, 4 KiB): the `kitchen` component's `echo-bytes:
//!   func(b: list<u8>) -> list<u8>` called typed (`call_typed::<(&[u8],), (Vec<u8>,)>`)
//!   and dynamically (`call` with a `Val::List` of `Val::U8`s built once, the result's
//!   `Val`s dropped each time), against `core`: `Instance::call_raw("echo")` on the
//!   `echo` guest (the envelope call of `calls.rs`'s `echo/membrane`).
//! - `components/record`: the `kitchen` component's `double-order: func(o: order) ->
//!   order` with `record order { id: u64, qty: u32, price: f64, sku: string }`, typed
//!   with the types `bindgen!` generates from `kitchen.wit` and dynamically with a
//!   `Val::Record`, against `core`: `Instance::call::<Order, Receipt>("total")` on the
//!   `typed` guest with a one-line order (postcard in an envelope each way). Not the
//!   same work to the instruction: the core guest totals its order and sorts the names;
//!   both take and return a record of a few numbers and one short string.
//!
//! After criterion's runs, [`ratios`] times each component call and its core
//! counterpart in alternating blocks and prints the median ratio (component / core),
//! so the two are compared under the same load.
//!
//! Needs the guest examples: `cargo xtask build-guests` (or `cargo xtask bench`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use membrane_benches::guest;
use membrane_host::component::{ComponentInstance, Val};
use membrane_host::{Engine, EngineConfig, HostFunctions, Instance};
use serde::{Deserialize, Serialize};

/// The types `bindgen!` generates from the WIT the kitchen component is built from.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-examples/kitchen/wit/kitchen.wit",
        world: "kitchen",
    });
}

use bindings::Order;

/// An order of the core `typed` guest (`guest-examples/typed`).
#[derive(Serialize, Deserialize)]
struct CoreOrder {
    id: u64,
    items: Vec<Item>,
    discount_percent: Option<u8>,
}

/// A line of a [`CoreOrder`].
#[derive(Serialize, Deserialize)]
struct Item {
    name: String,
    unit_cents: u64,
    quantity: u32,
}

/// The `typed` guest's answer.
#[derive(Serialize, Deserialize)]
struct Receipt {
    id: u64,
    total_cents: u64,
    names: Vec<String>,
}

const SIZES: [(usize, &str); 2] = [(64, "64B"), (4 << 10, "4KiB")];

fn config() -> EngineConfig {
    // As calls.rs: no timeout, fuel on (the default).
    EngineConfig::default().timeout(None)
}

/// The instances of one run: the kitchen component, the core `echo` and `typed` guests.
struct Guests {
    kitchen: ComponentInstance,
    echo: Instance<()>,
    typed: Instance<()>,
}

impl Guests {
    fn new() -> Guests {
        let engine = Engine::new(config()).unwrap();
        let core = |name: &str| {
            engine
                .load(&guest(name))
                .unwrap()
                .prepare(&HostFunctions::new())
                .unwrap()
                .instantiate(())
                .unwrap()
        };
        Guests {
            kitchen: engine
                .load_component(&guest("kitchen"))
                .unwrap()
                .instantiate()
                .unwrap(),
            echo: core("echo"),
            typed: core("typed"),
        }
    }

    fn echo_core(&mut self, input: &[u8]) -> Vec<u8> {
        self.echo.call_raw("echo", input).unwrap()
    }

    fn echo_typed(&mut self, input: &[u8]) -> Vec<u8> {
        let (out,): (Vec<u8>,) = self.kitchen.call_typed("echo-bytes", (input,)).unwrap();
        out
    }

    fn echo_dynamic(&mut self, input: &[Val]) -> Vec<Val> {
        self.kitchen.call("echo-bytes", input).unwrap()
    }

    fn record_core(&mut self, order: &CoreOrder) -> Receipt {
        self.typed.call("total", order).unwrap()
    }

    fn record_typed(&mut self, order: &Order) -> Order {
        let (out,): (Order,) = self.kitchen.call_typed("double-order", (order,)).unwrap();
        out
    }

    fn record_dynamic(&mut self, order: &[Val]) -> Vec<Val> {
        self.kitchen.call("double-order", order).unwrap()
    }
}

fn bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 + 3) as u8).collect()
}

fn byte_vals(input: &[u8]) -> [Val; 1] {
    [Val::List(input.iter().copied().map(Val::U8).collect())]
}

fn core_order() -> CoreOrder {
    CoreOrder {
        id: 7,
        items: vec![Item {
            name: "sku-0042".into(),
            unit_cents: 250,
            quantity: 3,
        }],
        discount_percent: None,
    }
}

fn order() -> Order {
    Order {
        id: 7,
        qty: 3,
        price: 2.5,
        sku: "sku-0042".into(),
    }
}

fn order_vals() -> [Val; 1] {
    [Val::Record(vec![
        ("id".into(), Val::U64(7)),
        ("qty".into(), Val::U32(3)),
        ("price".into(), Val::Float64(2.5)),
        ("sku".into(), Val::String("sku-0042".into())),
    ])]
}

fn echo(c: &mut Criterion, g: &mut Guests) {
    let mut group = c.benchmark_group("components/echo");
    for (size, label) in SIZES {
        let input = bytes(size);
        let vals = byte_vals(&input);
        assert_eq!(g.echo_core(&input), input);
        assert_eq!(g.echo_typed(&input), input);
        assert_eq!(g.echo_dynamic(&vals), vals);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("core", label), &input, |b, input| {
            b.iter(|| black_box(g.echo_core(black_box(input))))
        });
        group.bench_with_input(BenchmarkId::new("typed", label), &input, |b, input| {
            b.iter(|| black_box(g.echo_typed(black_box(input))))
        });
        group.bench_with_input(BenchmarkId::new("dynamic", label), &vals, |b, vals| {
            b.iter(|| black_box(g.echo_dynamic(black_box(vals))))
        });
    }
    group.finish();
}

fn record(c: &mut Criterion, g: &mut Guests) {
    let (core, typed, vals) = (core_order(), order(), order_vals());
    assert_eq!(g.record_core(&core).total_cents, 750);
    assert_eq!(g.record_typed(&typed).qty, 6);
    assert_eq!(g.record_dynamic(&vals).len(), 1);
    let mut group = c.benchmark_group("components/record");
    group.bench_function("core", |b| {
        b.iter(|| black_box(g.record_core(black_box(&core))))
    });
    group.bench_function("typed", |b| {
        b.iter(|| black_box(g.record_typed(black_box(&typed))))
    });
    group.bench_function("dynamic", |b| {
        b.iter(|| black_box(g.record_dynamic(black_box(&vals))))
    });
    group.finish();
}

/// The median over `rounds` of (time of `calls` calls of `a`) / (time of `calls` calls
/// of `b`), the two timed in alternating blocks, and the median time of one call of
/// each.
fn ratio(
    g: &mut Guests,
    mut a: impl FnMut(&mut Guests),
    mut b: impl FnMut(&mut Guests),
) -> (f64, Duration, Duration) {
    const ROUNDS: usize = 21;
    const CALLS: u32 = 2_000;
    let time = |g: &mut Guests, f: &mut dyn FnMut(&mut Guests)| {
        let started = Instant::now();
        for _ in 0..CALLS {
            f(g);
        }
        started.elapsed() / CALLS
    };
    let (mut ratios, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let x = time(g, &mut a);
        let y = time(g, &mut b);
        ratios.push(x.as_secs_f64() / y.as_secs_f64());
        ta.push(x);
        tb.push(y);
    }
    ratios.sort_by(f64::total_cmp);
    ta.sort();
    tb.sort();
    (ratios[ROUNDS / 2], ta[ROUNDS / 2], tb[ROUNDS / 2])
}

/// Prints each component call's ratio to its core counterpart, measured now.
fn ratios(g: &mut Guests) {
    println!("\ncomponent / core, median of 21 alternating blocks of 2 000 calls:");
    for (size, label) in SIZES {
        let input = bytes(size);
        let vals = byte_vals(&input);
        for (kind, r) in [
            (
                "typed",
                ratio(
                    g,
                    |g| drop(black_box(g.echo_typed(&input))),
                    |g| drop(black_box(g.echo_core(&input))),
                ),
            ),
            (
                "dynamic",
                ratio(
                    g,
                    |g| drop(black_box(g.echo_dynamic(&vals))),
                    |g| drop(black_box(g.echo_core(&input))),
                ),
            ),
        ] {
            println!(
                "  echo {label:>4} {kind:<8} {:>5.2}x  ({:?} against {:?})",
                r.0, r.1, r.2
            );
        }
    }
    let (core, typed, vals) = (core_order(), order(), order_vals());
    for (kind, r) in [
        (
            "typed",
            ratio(
                g,
                |g| drop(black_box(g.record_typed(&typed))),
                |g| drop(black_box(g.record_core(&core))),
            ),
        ),
        (
            "dynamic",
            ratio(
                g,
                |g| drop(black_box(g.record_dynamic(&vals))),
                |g| drop(black_box(g.record_core(&core))),
            ),
        ),
    ] {
        println!(
            "  record    {kind:<8} {:>5.2}x  ({:?} against {:?})",
            r.0, r.1, r.2
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut g = Guests::new();
    echo(&mut c, &mut g);
    record(&mut c, &mut g);
    c.final_summary();
    // `cargo test --benches` runs each bench once (`--test`, no `--bench`): no timing.
    if std::env::args().any(|a| a == "--bench") {
        ratios(&mut g);
    }
}
