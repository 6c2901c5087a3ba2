//! The soak mix: good and failing calls across fresh and persistent instances, and the
//! host's resident memory (RSS) before, after a warm-up and at the end.
//!
//! Shared by the `soak` example (`cargo xtask soak`, a million calls in release) and
//! the small soak test of the integration tests (`tests/all/soak.rs`), which include
//! this file with `#[path]`.

use std::path::Path;
use std::time::{Duration, Instant};

use membrane_host::{
    Engine, EngineConfig, ErrorKind, HostFunctions, Instance, InstancePre, TrapKind,
};

/// How many calls make one round of the mix.
const ROUND: u64 = 16;

/// A module whose only function returns an output envelope outside its memory: an
/// ABI violation on every call.
const BAD_POINTER_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0x0010000000000010)))
"#;

/// What a soak run measured.
pub(crate) struct Report {
    /// Calls made.
    pub(crate) calls: u64,
    /// Calls that succeeded (all with the expected answer).
    pub(crate) succeeded: u64,
    /// Calls that failed with the expected error kind.
    pub(crate) failed_as_expected: u64,
    /// Fresh instances created (one-call instances and resets of poisoned ones).
    pub(crate) fresh_instances: u64,
    /// Calls made before `rss_warm` was read.
    pub(crate) warmup_calls: u64,
    /// Resident memory in bytes before the first call, after the warm-up, at the end.
    pub(crate) rss_start: u64,
    /// See `rss_start`.
    pub(crate) rss_warm: u64,
    /// See `rss_start`.
    pub(crate) rss_end: u64,
    /// Time taken by all the calls.
    pub(crate) elapsed: Duration,
}

impl Report {
    /// Growth of the resident memory from the end of the warm-up to the end, in percent.
    pub(crate) fn growth_percent(&self) -> f64 {
        (self.rss_end as f64 - self.rss_warm as f64) * 100.0 / self.rss_warm as f64
    }

    /// A few lines for humans.
    pub(crate) fn summary(&self) -> String {
        let mib = |b: u64| format!("{:.1} MiB ({} KiB)", b as f64 / (1024.0 * 1024.0), b / 1024);
        format!(
            "soak: {} calls in {:.1} s ({:.0} calls/s): {} succeeded, {} failed as expected; {} fresh instances\n\
             rss: start {}, after warm-up ({} calls) {}, end {}: {:+.3}% after warm-up",
            self.calls,
            self.elapsed.as_secs_f64(),
            self.calls as f64 / self.elapsed.as_secs_f64(),
            self.succeeded,
            self.failed_as_expected,
            self.fresh_instances,
            mib(self.rss_start),
            self.warmup_calls,
            mib(self.rss_warm),
            mib(self.rss_end),
            self.growth_percent(),
        )
    }
}

/// The host's resident memory in bytes, from `/proc/self/statm` (resident pages, 4 KiB
/// each on the Linux targets this runs on; only ratios of it are judged).
pub(crate) fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("cannot read /proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/statm: {statm:?}"))?;
    Ok(pages * 4096)
}

/// The modules and the persistent instances of the mix.
struct Mix {
    echo: InstancePre<()>,
    typed: InstancePre<()>,
    panics: InstancePre<()>,
    spin: InstancePre<()>,
    bad_pointer: InstancePre<()>,
    echo_kept: Instance<()>,
    typed_kept: Instance<()>,
    panics_kept: Instance<()>,
    fresh_instances: u64,
}

impl Mix {
    fn new(guests: &Path) -> Result<Mix, String> {
        // Little fuel: the spinning guest fails fast, the others need far less.
        let engine = Engine::new(
            EngineConfig::default()
                .fuel(Some(200_000))
                .timeout(Some(Duration::from_secs(5)))
                .max_memory(64 << 20),
        )
        .map_err(|e| e.to_string())?;
        let host = HostFunctions::new();
        let prepare = |wasm: &[u8]| -> Result<InstancePre<()>, String> {
            engine
                .load(wasm)
                .and_then(|m| m.prepare(&host))
                .map_err(|e| e.to_string())
        };
        let guest = |name: &str| -> Result<InstancePre<()>, String> {
            let path = guests.join(format!("{name}.wasm"));
            let wasm = std::fs::read(&path).map_err(|e| {
                format!(
                    "cannot read {}: {e} (build the guests with `cargo xtask build-guests`)",
                    path.display()
                )
            })?;
            prepare(&wasm)
        };
        let bad = wat::parse_str(BAD_POINTER_WAT).map_err(|e| e.to_string())?;
        let (echo, typed, panics) = (guest("echo")?, guest("typed")?, guest("panics")?);
        let instance = |pre: &InstancePre<()>| pre.instantiate(()).map_err(|e| e.to_string());
        Ok(Mix {
            echo_kept: instance(&echo)?,
            typed_kept: instance(&typed)?,
            panics_kept: instance(&panics)?,
            spin: guest("spin")?,
            bad_pointer: prepare(&bad)?,
            echo,
            typed,
            panics,
            fresh_instances: 0,
        })
    }

    /// Makes call number `i`; `Ok(true)` if it succeeded as expected, `Ok(false)` if it
    /// failed as expected, `Err` for anything unexpected.
    fn call(&mut self, i: u64) -> Result<bool, String> {
        let expect_kind =
            |r: membrane_host::Result<()>, want: &str, ok: fn(&ErrorKind) -> bool| match r {
                Err(e) if ok(e.kind()) => Ok(false),
                other => Err(format!("call {i}: expected {want}, got {other:?}")),
            };
        let answer = |got: bool, what: &str| {
            if got {
                Ok(true)
            } else {
                Err(format!("call {i}: wrong answer from {what}"))
            }
        };
        match i % ROUND {
            // Persistent echo instance, payloads of varied sizes (0..4 KiB, and 64 KiB).
            0..=3 | 14 => {
                let len = if i % ROUND == 14 {
                    65_536
                } else {
                    (i * 37 % 4096) as usize
                };
                let input: Vec<u8> = (0..len).map(|b| (b as u64 ^ i) as u8).collect();
                let out = self
                    .echo_kept
                    .call_raw("echo", &input)
                    .map_err(|e| e.to_string())?;
                answer(out == input, "echo")
            }
            // A guest error: does not poison the instance.
            4 => expect_kind(
                self.echo_kept.call_raw("reject", b"no").map(drop),
                "a guest error",
                |k| matches!(k, ErrorKind::Guest { code, .. } if code.0 == 1001),
            ),
            5 => {
                let out: i64 = self
                    .typed_kept
                    .call("divide", &(84i64, 2i64))
                    .map_err(|e| e.to_string())?;
                answer(out == 42, "divide")
            }
            6 => {
                let values = vec![5i64, -3, 5, 9, (i % 100) as i64, -3];
                let out: Vec<i64> = self
                    .typed_kept
                    .call("sort_unique", &values)
                    .map_err(|e| e.to_string())?;
                let mut want = values;
                want.sort_unstable();
                want.dedup();
                answer(out == want, "sort_unique")
            }
            7 => expect_kind(
                self.typed_kept
                    .call::<_, i64>("divide", &(1i64, 0i64))
                    .map(drop),
                "a guest error",
                |k| matches!(k, ErrorKind::Guest { code, .. } if code.0 == 1003),
            ),
            // Fresh instances: good, panicking, spinning, breaking the ABI.
            8 => {
                self.fresh_instances += 1;
                let out = self
                    .echo
                    .call_fresh_raw((), "reverse", b"abc")
                    .map_err(|e| e.to_string())?;
                answer(out == b"cba", "a fresh reverse")
            }
            9 => {
                self.fresh_instances += 1;
                expect_kind(
                    self.panics.call_fresh::<_, ()>((), "boom", "soak"),
                    "a guest panic",
                    |k| matches!(k, ErrorKind::Panic { message } if message.contains("boom: soak")),
                )
            }
            10 => {
                self.fresh_instances += 1;
                expect_kind(
                    self.spin.call_fresh::<_, u64>((), "spin", &()).map(drop),
                    "out of fuel",
                    |k| matches!(k, ErrorKind::Trap(TrapKind::OutOfFuel)),
                )
            }
            13 => {
                self.fresh_instances += 1;
                expect_kind(
                    self.bad_pointer.call_fresh_raw((), "run", b"").map(drop),
                    "an abi violation",
                    |k| matches!(k, ErrorKind::Abi(_)),
                )
            }
            15 => {
                self.fresh_instances += 1;
                let out: String = self
                    .typed
                    .call_fresh((), "shout", "quiet")
                    .map_err(|e| e.to_string())?;
                answer(out == "QUIET", "a fresh shout")
            }
            // A persistent instance that panics, is poisoned, and is reset.
            11 => {
                let out: u32 = self
                    .panics_kept
                    .call("fine", &())
                    .map_err(|e| e.to_string())?;
                answer(out == 42, "fine")
            }
            _ => {
                let failed = expect_kind(
                    self.panics_kept
                        .call::<_, u32>("out_of_range", &7u32)
                        .map(drop),
                    "a guest panic",
                    |k| matches!(k, ErrorKind::Panic { .. }),
                )?;
                if !self.panics_kept.is_poisoned() {
                    return Err(format!("call {i}: a panicked instance is not poisoned"));
                }
                self.panics_kept
                    .reset(&self.panics)
                    .map_err(|e| e.to_string())?;
                self.fresh_instances += 1;
                Ok(failed)
            }
        }
    }
}

/// Runs `calls` calls of the mix with the guests in `guests`, reading the RSS before
/// the first call, after `warmup_calls` and at the end.
pub(crate) fn run(guests: &Path, calls: u64, warmup_calls: u64) -> Result<Report, String> {
    if warmup_calls >= calls {
        return Err(format!(
            "the warm-up ({warmup_calls} calls) must be shorter than the run ({calls} calls)"
        ));
    }
    let rss_start = rss_bytes()?;
    let mut mix = Mix::new(guests)?;
    let mut report = Report {
        calls,
        succeeded: 0,
        failed_as_expected: 0,
        fresh_instances: 0,
        warmup_calls,
        rss_start,
        rss_warm: rss_start,
        rss_end: rss_start,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    for i in 0..calls {
        if i == report.warmup_calls {
            report.rss_warm = rss_bytes()?;
        }
        if mix.call(i)? {
            report.succeeded += 1;
        } else {
            report.failed_as_expected += 1;
        }
    }
    report.elapsed = started.elapsed();
    report.rss_end = rss_bytes()?;
    report.fresh_instances = mix.fresh_instances;
    Ok(report)
}
