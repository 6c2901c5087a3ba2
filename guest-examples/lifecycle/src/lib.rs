//! Lifecycle hooks: a start hook that reads the instance's configuration from the host
//! and keeps it, functions that report what start set up, and a stop hook that tells
//! the host what the instance did.
//!
//! The host provides `config` (the instance's configuration, a string) and `stopped`
//! (told the configuration and the number of `count` calls when stop runs). The
//! configuration steers the hooks, so that host tests can make them fail:
//!
//! - `fail-start`: start returns error 1100;
//! - `panic-start`: start panics;
//! - `trap-start`: start aborts (`unreachable`);
//! - `spin-start`: start loops until the host stops it (fuel or timeout);
//! - `fail-stop`: stop tells the host, then returns error 1101;
//! - anything else: both succeed.

use std::cell::{Cell, RefCell};

use membrane_guest::{Error, export, host_externs};

host_externs!(config, stopped);

thread_local! {
    /// The configuration start read; `None` until start ran.
    static CONFIG: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many times start ran in this instance.
    static STARTS: Cell<u32> = const { Cell::new(0) };
    /// How many `count` calls this instance served.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Reads the configuration from the host and keeps it, unless it says to fail.
#[membrane_guest::start]
fn start() -> Result<(), Error> {
    STARTS.set(STARTS.get() + 1);
    let config: String = config(&())?;
    match config.as_str() {
        "fail-start" => {
            return Err(Error::new(
                1100,
                format!("refusing to start with `{config}`"),
            ));
        }
        "panic-start" => panic!("start panicked on purpose"),
        "trap-start" => std::process::abort(),
        "spin-start" => loop {
            std::hint::spin_loop();
        },
        _ => {}
    }
    CONFIG.with(|c| *c.borrow_mut() = Some(config));
    Ok(())
}

/// Tells the host the configuration and how many `count` calls the instance served.
#[membrane_guest::stop]
fn stop() -> Result<(), Error> {
    let config = CONFIG.with(|c| c.borrow().clone()).unwrap_or_default();
    stopped::<_, ()>(&(config.as_str(), CALLS.get()))?;
    if config == "fail-stop" {
        return Err(Error::new(1101, "refusing to stop"));
    }
    Ok(())
}

/// The configuration start kept; an error if start did not run.
#[export]
pub fn configured() -> Result<String, Error> {
    CONFIG.with(|c| c.borrow().clone().ok_or_else(|| "start did not run".into()))
}

/// Counts this call; returns `(calls served by this instance, times start ran in it)`.
#[export]
pub fn count() -> Result<(u64, u32), Error> {
    CALLS.set(CALLS.get() + 1);
    Ok((CALLS.get(), STARTS.get()))
}

/// Panics: poisons the instance, which then runs no stop hook.
#[export]
pub fn crash() -> Result<(), Error> {
    panic!("crash on purpose")
}
