//! A chat room member without a message handler (grant `bus`): a slow consumer whose
//! messages wait in its queue until it is asked to take them, so that host tests can
//! fill its queue.
//!
//! Exports (input → output, postcard):
//!
//! - `drain(channel: String) -> Vec<String>`: takes every message queued on `channel`,
//!   oldest first, each as `"<from>: <payload as UTF-8>"` (`from` is `host` for the
//!   host).
//! - `pending(channel: String) -> u32`: how many messages are queued on `channel`.

use membrane_guest::{Error, bus, export};

/// Takes every message queued on `channel`, as `"<from>: <text>"` lines.
#[export]
pub fn drain(channel: String) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    while let Some(msg) = bus::recv(&channel)? {
        lines.push(format!(
            "{}: {}",
            msg.from.as_deref().unwrap_or("host"),
            String::from_utf8_lossy(&msg.payload)
        ));
    }
    Ok(lines)
}

/// How many messages are queued on `channel`.
#[export]
pub fn pending(channel: String) -> Result<u32, Error> {
    bus::pending(&channel)
}
