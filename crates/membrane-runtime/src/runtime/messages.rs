//! The host's side of the message bus: sending to modules, receiving what they send to
//! the host, and delivering modules' queued messages to their message handlers
//! ([`Runtime::run_until_idle`]).

use membrane_types::MESSAGE_EXPORT;

use super::Runtime;
use crate::error::{Error, ErrorKind, Result};
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
    /// Modules take turns, one message each per round, in name order, so one busy
    /// module does not starve the others. A handler may send messages itself: they are
    /// delivered in later rounds, within the same budget, so two modules that answer
    /// each other forever stop at `max_steps` (`idle` is then `false`). Messages of
    /// modules without a handler stay queued for them to `recv`.
    ///
    /// A failed delivery does not stop the run: the message and the error are in the
    /// report's `failures` (the message is not retried by the runtime).
    pub fn run_until_idle(&self, max_steps: u64) -> IdleReport {
        let mut report = IdleReport::default();
        loop {
            let waiting: Vec<String> = self
                .inner
                .bus
                .modules_with_messages()
                .into_iter()
                .filter(|m| self.current(m).is_ok_and(|v| v.handles_messages))
                .collect();
            if waiting.is_empty() {
                report.idle = true;
                return report;
            }
            for module in waiting {
                if report.steps() >= max_steps {
                    return report;
                }
                let Some(message) = self.inner.bus.take_next(&module) else {
                    continue;
                };
                match self.deliver(&module, &message) {
                    Ok(()) => report.delivered += 1,
                    Err(error) => report.failures.push(DeliveryFailure {
                        module,
                        message,
                        error,
                    }),
                }
            }
        }
    }

    /// One call of `module`'s message handler with `message`, as a call from the host.
    fn deliver(&self, module: &str, message: &Message) -> Result<()> {
        let input = postcard::to_allocvec(&(
            message.from.as_deref(),
            message.channel.as_str(),
            message.payload.as_slice(),
        ))
        .map_err(|e| Error::host(format_args!("cannot encode a message: {e}")))?;
        self.run(module, self.host_call(), |instance, ctx| {
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
