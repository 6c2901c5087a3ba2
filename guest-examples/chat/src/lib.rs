//! A chat room member on the message bus (grant `bus`). Run several in one runtime:
//! each line one says reaches the others' message handlers.
//!
//! Exports (input → output, postcard):
//!
//! - `say(text: String) -> u32`: broadcasts `text` on channel `chat`; how many modules
//!   received it.
//! - `send_to((to, text): (String, String)) -> ()`: sends `text` on `chat` to the module
//!   `to` only.
//! - `history(()) -> Vec<String>`: the chat lines the handler received, oldest first,
//!   each `"<from>: <text>"` (`from` is `host` for the host).
//! - `inbox(channel: String) -> Vec<(Option<String>, Vec<u8>)>`: takes every message
//!   queued on `channel` with `recv` (sender, `None` for the host; payload), oldest
//!   first.
//! - `pending(channel: String) -> u32`: how many messages are queued on `channel`.
//! - `flood(n: u32) -> (u32, u32)`: broadcasts `n` lines on `chat`, stopping at the first
//!   error; how many were sent, and the error's code (17 `QUEUE_FULL` when a receiver's
//!   queue filled up), or 0.
//!
//! - `rally(to: String) -> ()`: sends an empty message on `rally` to the module `to`.
//! - `burst((to, channel, n, payload): (String, String, u32, Vec<u8>)) -> u32`: sends
//!   `payload` `n` times on `channel` to `to` (the bus benchmark's sender); stops at the
//!   first error and returns it.
//!
//! The message handler (`#[on_message]`): a message on `chat` is appended to the
//! history; a message on `ping` is answered with its payload on `pong`, to the module
//! that sent it or to the host; a message on `rally` from a module is sent back to it on
//! `rally` (two members rally forever: what a host's step budget is for); a message on
//! `fail` fails the handler (error 1000); a message on any other channel is ignored.

use std::cell::RefCell;

use membrane_guest::bus::{self, Message};
use membrane_guest::{Error, export};

/// The channel of chat lines.
const CHAT: &str = "chat";

/// A message as `inbox` returns it: the sender (`None` for the host) and the payload.
type Received = (Option<String>, Vec<u8>);

thread_local! {
    /// The chat lines received, oldest first.
    static HISTORY: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Broadcasts `text` on `chat`; how many modules received it.
#[export]
pub fn say(text: String) -> Result<u32, Error> {
    bus::broadcast(CHAT, text.as_bytes())
}

/// Sends `text` on `chat` to the module `to`.
#[export]
pub fn send_to(input: (String, String)) -> Result<(), Error> {
    let (to, text) = input;
    bus::send(&to, CHAT, text.as_bytes())
}

/// Keeps chat lines, answers pings.
#[membrane_guest::on_message]
fn on_message(msg: Message) -> Result<(), Error> {
    match msg.channel.as_str() {
        CHAT => {
            let line = format!(
                "{}: {}",
                msg.from.as_deref().unwrap_or("host"),
                String::from_utf8_lossy(&msg.payload)
            );
            HISTORY.with(|h| h.borrow_mut().push(line));
            Ok(())
        }
        "ping" => match &msg.from {
            Some(from) => bus::send(from, "pong", &msg.payload),
            None => bus::send_to_host("pong", &msg.payload),
        },
        "rally" => match &msg.from {
            Some(from) => bus::send(from, "rally", &msg.payload),
            None => Ok(()),
        },
        "fail" => Err(Error::new(1000, "this member refuses messages on `fail`")),
        _ => Ok(()),
    }
}

/// Sends `payload` `n` times on `channel` to the module `to`: how many were sent.
#[export]
pub fn burst(input: (String, String, u32, Vec<u8>)) -> Result<u32, Error> {
    let (to, channel, n, payload) = input;
    for _ in 0..n {
        bus::send(&to, &channel, &payload)?;
    }
    Ok(n)
}

/// Sends an empty message on `rally` to the module `to`.
#[export]
pub fn rally(to: String) -> Result<(), Error> {
    bus::send(&to, "rally", b"")
}

/// The chat lines received so far.
#[export]
pub fn history() -> Result<Vec<String>, Error> {
    Ok(HISTORY.with(|h| h.borrow().clone()))
}

/// Takes every message queued on `channel`: `(sender, payload)`, oldest first.
#[export]
pub fn inbox(channel: String) -> Result<Vec<Received>, Error> {
    let mut messages = Vec::new();
    while let Some(msg) = bus::recv(&channel)? {
        messages.push((msg.from, msg.payload));
    }
    Ok(messages)
}

/// How many messages are queued on `channel`.
#[export]
pub fn pending(channel: String) -> Result<u32, Error> {
    bus::pending(&channel)
}

/// Broadcasts `n` lines on `chat` until one fails: `(sent, the error's code or 0)`.
#[export]
pub fn flood(n: u32) -> Result<(u32, u32), Error> {
    for i in 0..n {
        if let Err(e) = bus::broadcast(CHAT, format!("flood {i}").as_bytes()) {
            return Ok((i, e.code.0));
        }
    }
    Ok((n, 0))
}
