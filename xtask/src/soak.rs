//! `cargo xtask soak [args]`: builds the guests, then runs the soak example in release
//! (a million calls by default; `args` go to it, e.g. `--calls 200000`). It prints the
//! host's RSS at the start, after the warm-up and at the end, and fails if the RSS grew
//! by 1% or more after the warm-up.

use crate::{guests, run};

pub(crate) fn run(args: &[&str]) -> Result<(), String> {
    guests::build()?;
    let dir = run::root().join(guests::GUESTS_DIR);
    let dir = dir.to_str().ok_or("the guests directory is not utf-8")?;
    let mut command = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "membrane-host",
        "--example",
        "soak",
        "--",
    ];
    if !args.contains(&"--calls") {
        command.extend(["--calls", "1000000"]);
    }
    command.extend_from_slice(args);
    run::cargo_env(&command, &[("MEMBRANE_GUESTS_DIR", dir)])
}
