//! The host's side of the message bus: sending to modules, receiving what they send to
//! the host, and delivering modules' queued messages to their message handlers
//! ([`Runtime::run_until_idle`]).

use membrane_types::MESSAGE_EXPORT;

use super::{Runtime, Version};

/// The most messages one module is delivered in a turn of [`Runtime::run_until_idle`]
/// before the next module's turn.
const TURN: usize = 16;
use crate::error::{Error, ErrorKind, Result};
use crate::services::serve::Bytes;
use crate::services::{BusError, Message};

/// What [`Runtime::run_until_idle`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct IdleReport {
    /// Messages a handler accepted.
    pub delivered: u64,
    /// Messages whose delivery failed (the handler's error, a trap, a limit, a module
    /// removed meanwhile): each with its message, which is the host's to retry or drop.
    pub failures: Vec<DeliveryFailure>,
    /// Whether no message waits for a handler any more. `false`: the step budget ran
    /// out first (modules that keep messaging each other, or more messages than steps);
    /// call again to go on.
    pub idle: bool,
}

impl IdleReport {
    /// Deliveries attempted: accepted and failed.
    pub fn steps(&self) -> u64 {
        self.delivered + self.failures.len() as u64
    }
}

/// A message whose delivery to a handler failed.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeliveryFailure {
    /// The module it was for.
    pub module: String,
    /// The message, handed back.
    pub message: Message,
    /// Why it failed.
    pub error: Error,
}

impl Runtime {
    /// Sends a message from the host to the module `to` on `channel`.
    ///
    /// Fails with [`ErrorKind::Bus`]: the module is unknown or was not granted the bus,
    /// its queue is full (nothing is delivered; send again once it has room), the
    /// payload is larger than `BusLimits::max_message_len`, or the channel name is
    /// empty or longer than 255 bytes.
    pub fn send(&self, to: &str, channel: &str, payload: &[u8]) -> Result<()> {
        self.inner
            .bus
            .send(None, Some(to), channel, payload)
            .map_err(|e| self.bus_error(e))
    }

    /// Sends a message from the host to every module granted the bus, all or none (one
    /// full queue refuses it to every module), and returns how many received it.
    pub fn broadcast(&self, channel: &str, payload: &[u8]) -> Result<u32> {
        self.inner
            .bus
            .broadcast(None, channel, payload)
            .map_err(|e| self.bus_error(e))
    }

    /// The oldest message of `channel` that modules sent to the host, if any.
    pub fn recv(&self, channel: &str) -> Option<Message> {
        self.inner.bus.recv(None, channel)
    }

    /// How many messages of `channel` wait in the host's queue.
    pub fn pending(&self, channel: &str) -> usize {
        self.inner.bus.pending(None, channel)
    }

    /// How many messages wait in the queue of the module `module` (every channel; 0
    /// for a module without a queue).
    pub fn queued(&self, module: &str) -> usize {
        self.inner.bus.queued(Some(module))
    }

    /// Delivers queued messages to the message handlers of the modules that export one
    /// (`#[membrane_guest::on_message]`), until none waits or `max_steps` deliveries
    /// were made, whichever comes first.
    ///
    /// Each delivery is one call of the module's handler (counted like any call, under
    /// the module's limits and instance policy) with the oldest message of its queue.
    /// Modules take turns in name order, up to 16 messages each per turn, so one busy
    /// module does not starve the others. A handler may send messages itself: they are
    /// delivered in later turns, within the same budget, so two modules that answer
    /// each other forever stop at `max_steps` (`idle` is then `false`). Messages of
    /// modules without a handler stay queued for them to `recv`.
    ///
    /// A failed delivery does not stop the run: the message and the error are in the
    /// report's `failures` (the message is not retried by the runtime).
    pub fn run_until_idle(&self, max_steps: u64) -> IdleReport {
        let mut report = IdleReport::default();
        loop {
            let mut waiting = false;
            for module in self.inner.bus.modules_with_messages() {
                let Ok(version) = self.current(&module) else {
                    continue;
                };
                if !version.handles_messages {
                    continue;
                }
                waiting = true;
                // One turn: up to `TURN` messages, then the next module's turn.
                for _ in 0..TURN {
                    if report.steps() >= max_steps {
                        return report;
                    }
                    let Some(message) = self.inner.bus.take_next(&module) else {
                        break;
                    };
                    match self.deliver(&version, &message) {
                        Ok(()) => report.delivered += 1,
                        Err(error) => report.failures.push(DeliveryFailure {
                            module: module.clone(),
                            message,
                            error,
                        }),
                    }
                }
            }
            if !waiting {
                report.idle = true;
                return report;
            }
        }
    }

    /// One call of the message handler of `version` with `message`, as a call from the
    /// host.
    fn deliver(&self, version: &Version, message: &Message) -> Result<()> {
        let from = message.from.as_deref().unwrap_or("");
        // Sized once: varint lengths take at most 5 bytes each here.
        let capacity = 16 + from.len() + message.channel.len() + message.payload.len();
        let input = postcard::to_extend(
            &(
                message.from.as_deref(),
                message.channel.as_str(),
                Bytes(&message.payload),
            ),
            Vec::with_capacity(capacity),
        )
        .map_err(|e| Error::host(format_args!("cannot encode a message: {e}")))?;
        let wait = self.inner.config.max_wait;
        self.run_version(version, wait, self.host_call(), |instance, ctx| {
            instance.call_envelope(ctx, MESSAGE_EXPORT, &input, &mut |_| {})
        })
    }

    /// The error of the host's message refused by the bus: a receiver without a queue
    /// is an unknown module unless the runtime holds it.
    fn bus_error(&self, e: BusError) -> Error {
        let e = match e {
            BusError::NoMailbox { module } if !self.read().contains_key(&module) => {
                BusError::UnknownModule { module }
            }
            e => e,
        };
        ErrorKind::Bus(e).into()
    }
}
