//! The message bus: bounded per-module queues of [`Message`]s, sent by modules and by
//! the host, received with `recv` or delivered to a module's message handler
//! (`Runtime::run_until_idle`).
//!
//! Every module granted the bus has one queue, bounded in messages and bytes
//! ([`BusLimits`]); the host has one too. A message that does not fit is refused to its
//! sender ([`BusError::QueueFull`], `ErrorCode::QUEUE_FULL`): never dropped. A queue is
//! FIFO: messages from one sender reach one receiver in the order they were sent, on
//! every channel. `recv(channel)` takes the oldest message of that channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use membrane_types::ErrorCode;

use crate::error::HostError;

/// The longest channel name, in bytes (a channel is 1 to this many bytes of UTF-8).
pub const MAX_CHANNEL_LEN: usize = 255;

/// Bounds of the bus's queues.
///
/// `#[non_exhaustive]` with public fields and chainable setters of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusLimits {
    /// The most messages one queue (a module's, or the host's) holds. Default: 1024.
    pub max_queue_messages: usize,
    /// The most bytes (payloads and channel names) one queue holds. Default: 1 MiB.
    pub max_queue_bytes: usize,
    /// The longest payload of one message. Default: 64 KiB.
    pub max_message_len: usize,
}

impl Default for BusLimits {
    fn default() -> BusLimits {
        BusLimits {
            max_queue_messages: 1024,
            max_queue_bytes: 1024 * 1024,
            max_message_len: 64 * 1024,
        }
    }
}

/// Chainable setters, one per field.
impl BusLimits {
    crate::__chainable_setters! { BusLimits,
        max_queue_messages => max_queue_messages: usize;
        max_queue_bytes => max_queue_bytes: usize;
        max_message_len => max_message_len: usize;
    }
}

/// A message on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The module that sent it; `None`: the host.
    pub from: Option<String>,
    /// Its channel.
    pub channel: String,
    /// Its data.
    pub payload: Vec<u8>,
}

impl Message {
    /// The bytes it takes in a queue: its payload and its channel's name.
    fn size(&self) -> usize {
        self.payload.len() + self.channel.len()
    }
}

/// Why the bus refused a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// No module of that name is in the runtime.
    #[error("no module `{module}` in the runtime to send to")]
    UnknownModule {
        /// The receiver named.
        module: String,
    },
    /// The module exists but was not granted the bus: it has no queue.
    #[error("module `{module}` was not granted the bus: it cannot receive messages")]
    NoMailbox {
        /// The receiver named.
        module: String,
    },
    /// The receiver's queue is full: nothing was delivered (for a broadcast: to anyone).
    #[error(
        "the queue of {receiver} is full ({messages} messages, {bytes} bytes; limits {max_messages} messages, {max_bytes} bytes): message not delivered"
    )]
    QueueFull {
        /// The receiver (`the host` or `module `name``).
        receiver: String,
        /// Messages in its queue.
        messages: usize,
        /// Bytes in its queue.
        bytes: usize,
        /// The queue's bound in messages.
        max_messages: usize,
        /// The queue's bound in bytes.
        max_bytes: usize,
    },
    /// The payload is longer than [`BusLimits::max_message_len`].
    #[error("message of {len} bytes exceeds the bus's limit of {limit} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The channel name is empty or longer than [`MAX_CHANNEL_LEN`].
    #[error("invalid channel name: {len} bytes (a channel is 1 to {MAX_CHANNEL_LEN} bytes)")]
    InvalidChannel {
        /// Its length.
        len: usize,
    },
}

impl BusError {
    /// The code a guest gets for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            BusError::UnknownModule { .. } => ErrorCode::UNKNOWN_MODULE,
            BusError::NoMailbox { .. } => ErrorCode::DENIED,
            BusError::QueueFull { .. } => ErrorCode::QUEUE_FULL,
            BusError::TooLarge { .. } => ErrorCode::LIMIT_EXCEEDED,
            BusError::InvalidChannel { .. } => ErrorCode::INVALID_INPUT,
        }
    }
}

impl From<BusError> for HostError {
    fn from(e: BusError) -> HostError {
        HostError::new(e.code(), e.to_string())
    }
}

/// One queue.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Message>,
    bytes: usize,
}

impl Queue {
    /// Whether `size` more bytes in one more message fit under `limits`, else the
    /// error for `receiver`.
    fn check_room(
        &self,
        size: usize,
        limits: &BusLimits,
        receiver: Option<&str>,
    ) -> Result<(), BusError> {
        if self.messages.len() < limits.max_queue_messages
            && self.bytes.saturating_add(size) <= limits.max_queue_bytes
        {
            return Ok(());
        }
        Err(BusError::QueueFull {
            receiver: receiver_name(receiver),
            messages: self.messages.len(),
            bytes: self.bytes,
            max_messages: limits.max_queue_messages,
            max_bytes: limits.max_queue_bytes,
        })
    }

    fn push(&mut self, message: Message) {
        self.bytes += message.size();
        self.messages.push_back(message);
    }

    /// The oldest message of `channel` (any channel: `None`).
    fn take(&mut self, channel: Option<&str>) -> Option<Message> {
        let at = match channel {
            None => 0,
            Some(channel) => self.messages.iter().position(|m| m.channel == channel)?,
        };
        let message = self.messages.remove(at)?;
        self.bytes -= message.size();
        Some(message)
    }

    fn pending(&self, channel: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.channel == channel)
            .count()
    }
}

/// The queues of a runtime's bus: one per module granted the bus, and the host's.
pub(crate) struct Bus {
    limits: BusLimits,
    queues: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    modules: BTreeMap<String, Queue>,
    host: Queue,
}

fn receiver_name(module: Option<&str>) -> String {
    match module {
        Some(module) => format!("module `{module}`"),
        None => "the host".to_string(),
    }
}

pub(crate) fn check_channel(channel: &str) -> Result<(), BusError> {
    if channel.is_empty() || channel.len() > MAX_CHANNEL_LEN {
        return Err(BusError::InvalidChannel { len: channel.len() });
    }
    Ok(())
}

impl Bus {
    pub(crate) fn new(limits: BusLimits) -> Bus {
        Bus {
            limits,
            queues: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Every operation leaves the queues consistent before anything may panic.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `module` a queue (kept if it has one).
    pub(crate) fn open(&self, module: &str) {
        self.lock().modules.entry(module.to_string()).or_default();
    }

    /// Takes `module`'s queue away with the messages still in it.
    pub(crate) fn close(&self, module: &str) -> Vec<Message> {
        self.lock()
            .modules
            .remove(module)
            .map(|q| q.messages.into())
            .unwrap_or_default()
    }

    fn check_message(&self, channel: &str, payload: &[u8]) -> Result<(), BusError> {
        check_channel(channel)?;
        if payload.len() > self.limits.max_message_len {
            return Err(BusError::TooLarge {
                len: payload.len(),
                limit: self.limits.max_message_len,
            });
        }
        Ok(())
    }

    /// Queues a message from `from` to `to` (`None`: the host). `Err(NoMailbox)` when
    /// `to` has no queue (the runtime tells an unknown module apart).
    pub(crate) fn send(
        &self,
        from: Option<&str>,
        to: Option<&str>,
        channel: &str,
        payload: &[u8],
    ) -> Result<(), BusError> {
        self.check_message(channel, payload)?;
        let message = Message {
            from: from.map(str::to_string),
            channel: channel.to_string(),
            payload: payload.to_vec(),
        };
        let mut queues = self.lock();
        let queue = match to {
            None => &mut queues.host,
            Some(to) => queues
                .modules
                .get_mut(to)
                .ok_or_else(|| BusError::NoMailbox {
                    module: to.to_string(),
                })?,
        };
        queue.check_room(message.size(), &self.limits, to)?;
        queue.push(message);
        Ok(())
    }

    /// Queues a message from `from` to every module with a queue but `from`: all or
    /// none (a full queue refuses the broadcast to everyone). Returns how many received
    /// it.
    pub(crate) fn broadcast(
        &self,
        from: Option<&str>,
        channel: &str,
        payload: &[u8],
    ) -> Result<u32, BusError> {
        self.check_message(channel, payload)?;
        let size = payload.len() + channel.len();
        let mut queues = self.lock();
        let is_receiver = |name: &String| Some(name.as_str()) != from;
        for (name, queue) in queues.modules.iter().filter(|(n, _)| is_receiver(n)) {
            queue.check_room(size, &self.limits, Some(name))?;
        }
        let mut receivers = 0u32;
        for (_, queue) in queues.modules.iter_mut().filter(|(n, _)| is_receiver(n)) {
            queue.push(Message {
                from: from.map(str::to_string),
                channel: channel.to_string(),
                payload: payload.to_vec(),
            });
            receivers = receivers.saturating_add(1);
        }
        Ok(receivers)
    }

    /// The oldest message of `channel` in `who`'s queue (`None`: the host's).
    pub(crate) fn recv(&self, who: Option<&str>, channel: &str) -> Option<Message> {
        let mut queues = self.lock();
        match who {
            None => queues.host.take(Some(channel)),
            Some(who) => queues.modules.get_mut(who)?.take(Some(channel)),
        }
    }

    /// How many messages of `channel` wait in `who`'s queue.
    pub(crate) fn pending(&self, who: Option<&str>, channel: &str) -> usize {
        let queues = self.lock();
        match who {
            None => queues.host.pending(channel),
            Some(who) => queues.modules.get(who).map_or(0, |q| q.pending(channel)),
        }
    }

    /// How many messages wait in `who`'s queue, on every channel.
    pub(crate) fn queued(&self, who: Option<&str>) -> usize {
        let queues = self.lock();
        match who {
            None => queues.host.messages.len(),
            Some(who) => queues.modules.get(who).map_or(0, |q| q.messages.len()),
        }
    }

    /// The oldest message in `module`'s queue, on any channel.
    pub(crate) fn take_next(&self, module: &str) -> Option<Message> {
        self.lock().modules.get_mut(module)?.take(None)
    }

    /// The modules whose queue holds a message, sorted by name.
    pub(crate) fn modules_with_messages(&self) -> Vec<String> {
        self.lock()
            .modules
            .iter()
            .filter(|(_, q)| !q.messages.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(messages: usize, bytes: usize) -> Bus {
        let bus = Bus::new(
            BusLimits::default()
                .max_queue_messages(messages)
                .max_queue_bytes(bytes)
                .max_message_len(100),
        );
        bus.open("a");
        bus.open("b");
        bus.open("c");
        bus
    }

    #[test]
    fn fifo_per_sender_and_receiver_across_channels() {
        let bus = bus(100, 10_000);
        for i in 0..10u8 {
            let channel = if i % 2 == 0 { "even" } else { "odd" };
            bus.send(Some("a"), Some("b"), channel, &[i]).unwrap();
        }
        assert_eq!(bus.pending(Some("b"), "even"), 5);
        assert_eq!(bus.recv(Some("b"), "odd").unwrap().payload, [1]);
        assert_eq!(bus.recv(Some("b"), "odd").unwrap().payload, [3]);
        let all: Vec<u8> = std::iter::from_fn(|| bus.take_next("b"))
            .map(|m| m.payload[0])
            .collect();
        assert_eq!(all, [0, 2, 4, 5, 6, 7, 8, 9]);
        assert_eq!(bus.queued(Some("b")), 0);
        assert!(bus.recv(Some("b"), "odd").is_none());
    }

    #[test]
    fn a_full_queue_refuses_and_keeps_what_it_has() {
        let bus = bus(3, 10_000);
        for i in 0..3u8 {
            bus.send(None, Some("a"), "c", &[i]).unwrap();
        }
        let e = bus.send(None, Some("a"), "c", &[9]).unwrap_err();
        assert!(matches!(e, BusError::QueueFull { messages: 3, .. }), "{e}");
        assert_eq!(e.code(), ErrorCode::QUEUE_FULL);
        assert_eq!(bus.queued(Some("a")), 3);
        // Room again once one is taken.
        bus.recv(Some("a"), "c").unwrap();
        bus.send(None, Some("a"), "c", &[9]).unwrap();

        // Bytes: payload and channel count.
        let bus = bus_bytes();
        bus.send(None, Some("a"), "ch", &[0; 8]).unwrap(); // 10 bytes: exactly full
        let e = bus.send(None, Some("a"), "ch", &[]).unwrap_err(); // 2 more
        assert!(matches!(e, BusError::QueueFull { bytes: 10, .. }), "{e}");
    }

    fn bus_bytes() -> Bus {
        bus(100, 10)
    }

    #[test]
    fn broadcast_is_all_or_nothing_and_skips_the_sender() {
        let bus = bus(2, 10_000);
        assert_eq!(bus.broadcast(Some("a"), "room", b"hi").unwrap(), 2);
        assert_eq!(bus.queued(Some("a")), 0);
        assert_eq!(bus.queued(None), 0, "the host gets no broadcast");
        bus.send(None, Some("c"), "other", b"x").unwrap(); // c is now full
        let e = bus.broadcast(Some("a"), "room", b"again").unwrap_err();
        assert!(matches!(&e, BusError::QueueFull { receiver, .. } if receiver == "module `c`"));
        assert_eq!(
            bus.queued(Some("b")),
            1,
            "b did not get the refused broadcast"
        );
        // From the host: every module.
        let bus = bus_big();
        assert_eq!(bus.broadcast(None, "room", b"x").unwrap(), 3);
    }

    fn bus_big() -> Bus {
        bus(100, 10_000)
    }

    #[test]
    fn bad_messages_and_receivers() {
        let bus = bus_big();
        assert!(matches!(
            bus.send(None, Some("zz"), "c", b""),
            Err(BusError::NoMailbox { .. })
        ));
        assert!(matches!(
            bus.send(None, Some("a"), "", b""),
            Err(BusError::InvalidChannel { len: 0 })
        ));
        let long = "x".repeat(MAX_CHANNEL_LEN + 1);
        assert!(matches!(
            bus.send(None, Some("a"), &long, b""),
            Err(BusError::InvalidChannel { .. })
        ));
        assert!(matches!(
            bus.send(None, Some("a"), "c", &[0; 101]),
            Err(BusError::TooLarge {
                len: 101,
                limit: 100
            })
        ));
        bus.send(None, Some("a"), "c", &[0; 100]).unwrap();
        // The host's queue.
        bus.send(Some("a"), None, "up", b"1").unwrap();
        assert_eq!(bus.pending(None, "up"), 1);
        assert_eq!(bus.recv(None, "up").unwrap().from.as_deref(), Some("a"));
    }

    #[test]
    fn close_returns_the_queued_messages() {
        let bus = bus_big();
        bus.send(None, Some("a"), "c", b"1").unwrap();
        bus.send(None, Some("a"), "c", b"2").unwrap();
        assert_eq!(bus.modules_with_messages(), ["a"]);
        let left = bus.close("a");
        assert_eq!(
            left.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(),
            [b"1".to_vec(), b"2".to_vec()]
        );
        assert!(bus.modules_with_messages().is_empty());
        assert!(matches!(
            bus.send(None, Some("a"), "c", b""),
            Err(BusError::NoMailbox { .. })
        ));
    }
}
