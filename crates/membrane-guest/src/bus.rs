//! The message bus between the modules of a runtime and its host (imports
//! `membrane_services.bus_send`, `bus_broadcast`, `bus_recv`, `bus_pending`, grant
//! `bus`).
//!
//! A message is bytes sent on a named channel. It waits in the receiver's queue until
//! the receiver takes it: a module with a message handler
//! ([`#[on_message]`](crate::on_message)) is handed its messages by the runtime
//! (`Runtime::run_until_idle`), one call per message; any module may also take them
//! itself, channel by channel, with [`recv`].
//!
//! ```
//! use membrane_guest::bus::{self, Message};
//! use membrane_guest::{export, Error};
//!
//! /// Tells the module `audit` and every module on the bus.
//! #[export]
//! pub fn announce(text: String) -> Result<u32, Error> {
//!     bus::send("audit", "events", text.as_bytes())?;
//!     bus::broadcast("news", text.as_bytes())
//! }
//!
//! /// Answers every ping with a pong, to the module that sent it (or the host).
//! #[membrane_guest::on_message]
//! fn on_message(msg: Message) -> Result<(), Error> {
//!     if msg.channel == "ping" {
//!         match &msg.from {
//!             Some(module) => bus::send(module, "pong", &msg.payload)?,
//!             None => bus::send_to_host("pong", &msg.payload)?,
//!         }
//!     }
//!     Ok(())
//! }
//!
//! /// Takes what is queued on `channel`.
//! #[export]
//! pub fn drain(channel: String) -> Result<Vec<Vec<u8>>, Error> {
//!     let mut payloads = Vec::new();
//!     while let Some(msg) = bus::recv(&channel)? {
//!         payloads.push(msg.payload);
//!     }
//!     Ok(payloads)
//! }
//! # // Off wasm32 there is no host.
//! # assert_eq!(announce("hi".into()).unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
//! # let ping = Message { from: None, channel: "ping".into(), payload: b"1".to_vec() };
//! # assert!(on_message(ping).is_err());
//! # assert!(drain("c".into()).is_err());
//! ```
//!
//! Delivery has backpressure: a receiver's queue holds a bounded number of messages,
//! and a send to a full queue is an error with code `QUEUE_FULL`: nothing was
//! delivered, and the sender may try again later. A receiver the runtime does not hold
//! is `UNKNOWN_MODULE`; one that was not granted the bus is `DENIED`. Off wasm32 every
//! function returns an error with code `NOT_FOUND`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::Error;
use crate::host::{call_host, call_host_prefixed, call_host_with};
use crate::services::{decode, imports};

const SEND: &str = "membrane_services.bus_send";
const BROADCAST: &str = "membrane_services.bus_broadcast";
const RECV: &str = "membrane_services.bus_recv";
const PENDING: &str = "membrane_services.bus_pending";

/// A message of the bus, as [`recv`] returns it and as a message handler
/// ([`#[on_message]`](crate::on_message)) takes it.
///
/// Its postcard encoding, the handler's input, is `(from: Option<&str>, channel: &str,
/// payload: &[u8])`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// The module that sent it, or `None` for the host.
    pub from: Option<String>,
    /// The channel it was sent on.
    pub channel: String,
    /// Its bytes.
    #[serde(deserialize_with = "byte_buf")]
    pub payload: Vec<u8>,
}

/// Sends `payload` on `channel` to the module `to`: queued for it, or an error
/// (`QUEUE_FULL`, `UNKNOWN_MODULE`, `DENIED`; see the [module](self) docs). Request:
/// postcard `(Some(to), channel)`, then the payload; response empty.
pub fn send(to: &str, channel: &str, payload: &[u8]) -> Result<(), Error> {
    call_host_prefixed(
        SEND,
        imports::bus_send,
        &(Some(to), channel),
        payload,
        |_| (),
    )
}

/// Sends `payload` on `channel` to the host (see [`send`]; request postcard
/// `(None, channel)`, then the payload).
pub fn send_to_host(channel: &str, payload: &[u8]) -> Result<(), Error> {
    call_host_prefixed(
        SEND,
        imports::bus_send,
        &(None::<&str>, channel),
        payload,
        |_| (),
    )
}

/// Sends `payload` on `channel` to every other module granted the bus (not this one,
/// not the host); how many received it. All or nothing: when any receiver's queue is
/// full, nobody receives it and the error has code `QUEUE_FULL`. Request: postcard
/// `channel`, then the payload; response postcard `u32`.
pub fn broadcast(channel: &str, payload: &[u8]) -> Result<u32, Error> {
    call_host_prefixed(
        BROADCAST,
        imports::bus_broadcast,
        &channel,
        payload,
        |response| decode::<u32>(BROADCAST, response),
    )?
}

/// Takes the oldest message queued for this module on `channel`, or `None` when there
/// is none. Request: postcard `channel`; response postcard
/// `Option<(Option<&str>, &[u8])>` (the sender, `None` for the host, and the payload).
pub fn recv(channel: &str) -> Result<Option<Message>, Error> {
    call_host_with(RECV, imports::bus_recv, &channel, |response| {
        decode_recv(channel, response)
    })?
}

/// How many messages are queued for this module on `channel`. Request: postcard
/// `channel`; response postcard `u32`.
pub fn pending(channel: &str) -> Result<u32, Error> {
    call_host(PENDING, imports::bus_pending, &channel)
}

/// A receive response's payload as the message it holds, received on `channel`.
fn decode_recv(channel: &str, response: &[u8]) -> Result<Option<Message>, Error> {
    let message = decode::<Option<(Option<&str>, &[u8])>>(RECV, response)?;
    Ok(message.map(|(from, payload)| Message {
        from: from.map(str::to_string),
        channel: channel.to_string(),
        payload: payload.to_vec(),
    }))
}

/// Deserializes bytes into a `Vec<u8>` in one copy (postcard's byte string, which a
/// `Vec<u8>` would read as a sequence, byte by byte; the same encoding).
fn byte_buf<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct ByteBuf;

    impl<'de> Visitor<'de> for ByteBuf {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }

    deserializer.deserialize_byte_buf(ByteBuf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use membrane_types::ErrorCode;

    #[test]
    fn off_wasm32_the_bus_reports_not_found() {
        for code in [
            send("m", "c", b"p").unwrap_err().code,
            send_to_host("c", b"p").unwrap_err().code,
            broadcast("c", b"p").unwrap_err().code,
            recv("c").unwrap_err().code,
            pending("c").unwrap_err().code,
        ] {
            assert_eq!(code, ErrorCode::NOT_FOUND);
        }
    }

    #[test]
    fn recv_responses_decode() {
        let none: Option<(Option<&str>, &[u8])> = None;
        assert_eq!(
            decode_recv("c", &postcard::to_allocvec(&none).unwrap()),
            Ok(None)
        );
        let payload = vec![0xff; 200];
        for from in [None, Some("chat")] {
            let response = postcard::to_allocvec(&Some((from, payload.as_slice()))).unwrap();
            assert_eq!(
                decode_recv("room", &response),
                Ok(Some(Message {
                    from: from.map(String::from),
                    channel: "room".into(),
                    payload: payload.clone(),
                }))
            );
        }
        for bad in [&[][..], &[2][..], &[1, 1, 1, b'a'][..], &[0, 0][..]] {
            let e = decode_recv("c", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::HOST_FUNCTION_FAILED, "{bad:?}");
        }
    }

    /// The handler's input, `(from, channel, payload)`, decodes as a `Message`.
    #[test]
    fn handler_input_decodes_as_a_message() {
        let payload: &[u8] = b"\x00hello";
        for from in [None, Some("alice")] {
            let input = postcard::to_allocvec(&(from, "chat", payload)).unwrap();
            let message: Message = membrane_codec::from_payload(&input).unwrap();
            assert_eq!(
                message,
                Message {
                    from: from.map(String::from),
                    channel: "chat".into(),
                    payload: payload.to_vec(),
                }
            );
        }
        // Truncated input is an error, not a panic.
        let input = postcard::to_allocvec(&(Some("alice"), "chat", payload)).unwrap();
        for len in 0..input.len() {
            assert!(membrane_codec::from_payload::<Message>(&input[..len]).is_err());
        }
    }

    /// The prefixes the senders write are the bytes the contract names.
    #[test]
    fn send_prefixes_encode_as_specified() {
        assert_eq!(
            postcard::to_allocvec(&(Some("b"), "c")).unwrap(),
            b"\x01\x01b\x01c"
        );
        assert_eq!(
            postcard::to_allocvec(&(None::<&str>, "c")).unwrap(),
            b"\x00\x01c"
        );
    }
}
