//! Project automation, the matklad way: `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! | task | what it does |
//! |------|--------------|
//! | `build-guests` | builds `guest-examples/*` for wasm32 (release) into `target/guests/<name>.wasm`, and `guest-examples/wasi-greeter` for wasm32-wasip2 (a component) |
//! | `test [args]` | `build-guests`, then `cargo test --workspace [args]`: the README's test command |
//! | `demo` | `build-guests`, then runs the host demo (the README's run command) |
//! | `bench [args]` | `build-guests`, then `cargo bench -p membrane-benches [args]` |
//! | `soak [args]` | `build-guests`, then a million good and failing calls (`--calls N` to change) in release; fails if the host's RSS grows 1% or more after the warm-up |
//! | `ci` | everything `.ci/run` checks, in order |

mod ci;
mod guests;
mod run;
mod soak;
mod wasi_guests;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "build-guests" => guests::build(),
        "test" => guests::build()
            .and_then(|()| run::cargo(&[&["test", "--workspace"], &strs(rest)[..]].concat())),
        "demo" => guests::build().and_then(|()| {
            run::cargo(&["run", "--quiet", "-p", "membrane-host", "--example", "demo"])
        }),
        "bench" => guests::build().and_then(|()| {
            run::cargo(&[&["bench", "-p", "membrane-benches"], &strs(rest)[..]].concat())
        }),
        "soak" => soak::run(&strs(rest)),
        "ci" => ci::run(),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <build-guests | test [args] | demo | bench [args] | soak [args] | ci>"
            );
            Ok(())
        }
        other => Err(format!("unknown task `{other}`; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
