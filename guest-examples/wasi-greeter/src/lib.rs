//! A WASI preview 2 guest component written with Rust's std: each export uses one
//! capability (files, environment, arguments, clocks, stdio) so that a host test can
//! observe, from inside, what the host's WASI policy granted or denied.

use std::io::Read;
use std::time::{Instant, SystemTime};

/// The bindings of `wit/greeter.wit`.
mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "greeter",
        path: "wit",
        pub_export_macro: true,
    });
}

use bindings::Guest;

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}!")
    }

    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    }

    fn write_file(path: String, contents: String) -> Result<(), String> {
        std::fs::write(&path, contents).map_err(|e| e.to_string())
    }

    fn env(key: String) -> Option<String> {
        std::env::var(key).ok()
    }

    fn args() -> Vec<String> {
        std::env::args().collect()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn elapsed() -> u64 {
        let start = Instant::now();
        let mut x = 0u64;
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn print(line: String) {
        println!("{line}");
    }

    fn eprint(line: String) {
        eprintln!("{line}");
    }

    fn print_lines(count: u32) {
        for i in 0..count {
            println!("line {i}");
        }
    }

    fn read_stdin() -> String {
        let mut text = String::new();
        match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => text,
            Err(e) => format!("error: {e}"),
        }
    }

    fn sleep(ms: u64) -> u64 {
        let start = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        start.elapsed().as_nanos() as u64
    }

    #[allow(clippy::empty_loop)]
    fn spin() {
        loop {
            std::hint::black_box(());
        }
    }
}

bindings::export!(Greeter with_types_in bindings);
