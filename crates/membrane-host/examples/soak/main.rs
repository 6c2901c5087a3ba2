//! Soak test: a million calls (by default) mixing good and failing calls across fresh
//! and persistent instances; reports the host's resident memory (RSS) at the start,
//! after a warm-up and at the end, and fails if it grew by 1% or more after the warm-up.
//!
//! ```sh
//! cargo xtask soak                       # builds the guests, then runs this in release
//! cargo run --release -p membrane-host --example soak -- --calls 1000000 [--warmup N] [--guests DIR]
//! ```
//!
//! The guests are read from `--guests`, else `$MEMBRANE_GUESTS_DIR`, else
//! `target/guests`. The warm-up defaults to a tenth of the calls.

use std::path::PathBuf;
use std::process::ExitCode;

mod mix;

/// Largest RSS growth after the warm-up that passes, in percent.
const MAX_GROWTH_PERCENT: f64 = 1.0;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, String> {
    let mut calls: u64 = 1_000_000;
    let mut warmup: Option<u64> = None;
    let mut guests: Option<PathBuf> = std::env::var_os("MEMBRANE_GUESTS_DIR").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--calls" => calls = number(&value()?)?,
            "--warmup" => warmup = Some(number(&value()?)?),
            "--guests" => guests = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("usage: soak [--calls N] [--warmup N] [--guests DIR]");
                return Ok(true);
            }
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
    }
    let guests = guests
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"));
    let warmup = warmup.unwrap_or(calls / 10);
    let report = mix::run(&guests, calls, warmup)?;
    println!("{}", report.summary());
    let growth = report.growth_percent();
    if growth >= MAX_GROWTH_PERCENT {
        println!(
            "soak: FAILED: rss grew {growth:.3}% after the warm-up (limit {MAX_GROWTH_PERCENT}%)"
        );
        return Ok(false);
    }
    println!("soak: ok: rss growth after the warm-up {growth:.3}% < {MAX_GROWTH_PERCENT}%");
    Ok(true)
}

fn number(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))
}
