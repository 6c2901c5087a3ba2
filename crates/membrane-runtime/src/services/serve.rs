//! Serving one `membrane_services` import (`docs/abi.md` §10): the request payload
//! decoded, the grant checked again, the provider called, the answer encoded. Every
//! failure is a [`HostError`] for the guest, never a trap.

use serde::{Deserialize, Serialize};

use membrane_types::ErrorCode;

use super::Services;
use super::bus::{Bus, BusError};
use super::effects::{Effect, MAX_EFFECT_KIND_LEN};
use super::grants::{Grants, ServiceImport};
use super::kv::KvError;
use super::log::{LogLevel, LogRecord, LogSource};
use super::random::MAX_RANDOM_REQUEST;
use crate::error::HostError;
use crate::runtime::RuntimeConfig;

/// The most entries one `kv_scan` request returns.
pub(crate) const MAX_SCAN_ENTRIES: u32 = 1024;
/// The most key and value bytes one `kv_scan` page holds (one larger entry still comes
/// alone).
pub(crate) const MAX_SCAN_BYTES: usize = 1024 * 1024;

/// What one call of a module has used of its per-call service budgets (the log's). An
/// executor keeps one per instance and resets it when a call from outside the instance
/// begins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceBudget {
    lines: u32,
    bytes: usize,
    warned: bool,
}

impl ServiceBudget {
    /// A fresh budget, for a new call.
    #[inline]
    pub fn reset(&mut self) {
        *self = ServiceBudget::default();
    }
}

/// Everything serving a module's service call needs.
pub(crate) struct Host<'a> {
    pub(crate) module: &'a str,
    pub(crate) grants: &'a Grants,
    pub(crate) request_id: u64,
    pub(crate) services: &'a Services,
    pub(crate) bus: &'a Bus,
    pub(crate) config: &'a RuntimeConfig,
    /// Whether the runtime holds a module of this name.
    pub(crate) is_module: &'a dyn Fn(&str) -> bool,
}

type Served = Result<Vec<u8>, HostError>;

/// Serves `import` for `host.module` with the request payload `payload`.
pub(crate) fn serve(
    host: &Host<'_>,
    import: ServiceImport,
    budget: &mut ServiceBudget,
    payload: &[u8],
) -> Served {
    let grant = import.grant();
    if !host.grants.allows(grant) {
        // Refused at `add` already; kept so that no path serves an ungranted service.
        return Err(HostError::new(
            ErrorCode::DENIED,
            format!(
                "module `{}` was not granted `{grant}` (import membrane_services.{})",
                host.module,
                import.name()
            ),
        ));
    }
    match import {
        ServiceImport::Log => {
            let (level, message): (u8, &str) = decode(payload, "log")?;
            let level = LogLevel::from_wire(level).ok_or_else(|| {
                HostError::new(
                    ErrorCode::INVALID_INPUT,
                    format!("log request: {level} is not a log level (0 trace .. 4 error)"),
                )
            })?;
            log(host, budget, level, LogSource::Guest, message)?;
            Ok(Vec::new())
        }
        ServiceImport::ClockWall => encode(&host.services.clock.wall_nanos()),
        ServiceImport::ClockMonotonic => encode(&host.services.clock.monotonic_nanos()),
        ServiceImport::Random => {
            let len: u32 = decode(payload, "random")?;
            let len = len as usize;
            if len > MAX_RANDOM_REQUEST {
                return Err(HostError::new(
                    ErrorCode::LIMIT_EXCEEDED,
                    format!(
                        "random request of {len} bytes exceeds the limit of {MAX_RANDOM_REQUEST} per request"
                    ),
                ));
            }
            let mut bytes = vec![0; len];
            host.services
                .random
                .fill(&mut bytes)
                .map_err(|e| HostError::new(ErrorCode::HOST_FUNCTION_FAILED, e))?;
            Ok(bytes)
        }
        ServiceImport::Emit => {
            let (kind, effect_payload) = take::<&str>(payload, "emit")?;
            if kind.is_empty() || kind.len() > MAX_EFFECT_KIND_LEN {
                return Err(HostError::new(
                    ErrorCode::INVALID_INPUT,
                    format!(
                        "effect kind of {} bytes (an effect kind is 1 to {MAX_EFFECT_KIND_LEN} bytes)",
                        kind.len()
                    ),
                ));
            }
            let effect = Effect {
                module: host.module,
                request_id: host.request_id,
                kind,
                payload: effect_payload,
            };
            host.services.effects.handle(&effect)?;
            Ok(Vec::new())
        }
        ServiceImport::AssertFailed => {
            let message: &str = decode(payload, "assert_failed")?;
            // Logged within the budget; failed either way.
            let _ = log(host, budget, LogLevel::Warn, LogSource::Assertion, message);
            Err(HostError::new(
                ErrorCode::ASSERTION_FAILED,
                format!("assertion failed: {message}"),
            ))
        }
        ServiceImport::Breakpoint => {
            let label: &str = decode(payload, "breakpoint")?;
            log(host, budget, LogLevel::Debug, LogSource::Breakpoint, label)?;
            Ok(Vec::new())
        }
        ServiceImport::KvGet => {
            let (store, namespace) = kv(host, payload)?;
            let value = store.get(namespace, payload).map_err(kv_error)?;
            encode(&value.as_deref().map(Bytes))
        }
        ServiceImport::KvPut => {
            let (key, value) = take::<&[u8]>(payload, "kv_put")?;
            let (store, namespace) = kv(host, key)?;
            store
                .put(namespace, key, value, &host.config.kv)
                .map_err(kv_error)?;
            Ok(Vec::new())
        }
        ServiceImport::KvDelete => {
            let (store, namespace) = kv(host, payload)?;
            encode(&store.delete(namespace, payload).map_err(kv_error)?)
        }
        ServiceImport::KvScan => {
            let (prefix, after, limit): (&[u8], Option<&[u8]>, u32) = decode(payload, "kv_scan")?;
            let (store, namespace) = kv(host, prefix)?;
            let limit = limit.clamp(1, MAX_SCAN_ENTRIES) as usize;
            let page = store
                .scan(namespace, prefix, after, limit, MAX_SCAN_BYTES)
                .map_err(kv_error)?;
            let entries: Vec<(Bytes<'_>, Bytes<'_>)> = page
                .entries
                .iter()
                .map(|(k, v)| (Bytes(k), Bytes(v)))
                .collect();
            encode(&(entries, page.more))
        }
        ServiceImport::BusSend => {
            let ((to, channel), message) = take::<(Option<&str>, &str)>(payload, "bus_send")?;
            host.bus
                .send(Some(host.module), to, channel, message)
                .map_err(|e| bus_error(host, e))?;
            Ok(Vec::new())
        }
        ServiceImport::BusBroadcast => {
            let (channel, message) = take::<&str>(payload, "bus_broadcast")?;
            let receivers = host
                .bus
                .broadcast(Some(host.module), channel, message)
                .map_err(|e| bus_error(host, e))?;
            encode(&receivers)
        }
        ServiceImport::BusRecv => {
            let channel: &str = decode(payload, "bus_recv")?;
            super::bus::check_channel(channel).map_err(HostError::from)?;
            let message = host.bus.recv(Some(host.module), channel);
            encode(
                &message
                    .as_ref()
                    .map(|m| (m.from.as_deref(), Bytes(&m.payload))),
            )
        }
        ServiceImport::BusPending => {
            let channel: &str = decode(payload, "bus_pending")?;
            super::bus::check_channel(channel).map_err(HostError::from)?;
            let pending = host.bus.pending(Some(host.module), channel);
            encode(&u32::try_from(pending).unwrap_or(u32::MAX))
        }
    }
}

/// Sends one line to the log sink within the call's budget.
fn log(
    host: &Host<'_>,
    budget: &mut ServiceBudget,
    level: LogLevel,
    source: LogSource,
    message: &str,
) -> Result<(), HostError> {
    let limits = &host.config.log;
    if message.len() > limits.max_message_len {
        return Err(HostError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!(
                "log message of {} bytes exceeds the limit of {} bytes",
                message.len(),
                limits.max_message_len
            ),
        ));
    }
    let bytes = budget.bytes.saturating_add(message.len());
    if budget.lines >= limits.max_lines_per_call || bytes > limits.max_bytes_per_call {
        if !budget.warned {
            budget.warned = true;
            tracing::warn!(
                target: "membrane::runtime",
                module = host.module,
                request_id = host.request_id,
                "module `{}` exceeded its log budget ({} lines, {} bytes per call): its further lines in this call are refused",
                host.module,
                limits.max_lines_per_call,
                limits.max_bytes_per_call
            );
        }
        return Err(HostError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!(
                "log budget of this call exhausted ({} lines, {} bytes per call)",
                limits.max_lines_per_call, limits.max_bytes_per_call
            ),
        ));
    }
    budget.lines += 1;
    budget.bytes = bytes;
    host.services.log.log(&LogRecord {
        module: host.module,
        request_id: host.request_id,
        level,
        source,
        message,
    });
    Ok(())
}

/// The store and the module's namespace, `key` checked against the key limit.
fn kv<'h>(host: &Host<'h>, key: &[u8]) -> Result<(&'h dyn super::kv::KvStore, &'h str), HostError> {
    let (Some(store), Some(namespace)) = (&host.services.kv, host.grants.kv_namespace()) else {
        // `add` refuses a kv grant without a store; a grant without a namespace cannot
        // be made.
        return Err(HostError::new(
            ErrorCode::STORAGE_FAILED,
            "this runtime has no key-value store",
        ));
    };
    let limit = host.config.kv.max_key_len;
    if key.len() > limit {
        return Err(kv_error(KvError::KeyTooLarge {
            len: key.len(),
            limit,
        }));
    }
    Ok((&**store, namespace))
}

fn kv_error(e: KvError) -> HostError {
    HostError::new(e.code(), e.to_string())
}

/// A bus error for the guest: a receiver without a queue is an unknown module unless
/// the runtime holds it.
fn bus_error(host: &Host<'_>, e: BusError) -> HostError {
    match e {
        BusError::NoMailbox { module } if !(host.is_module)(&module) => {
            BusError::UnknownModule { module }.into()
        }
        e => e.into(),
    }
}

/// Bytes serialized as one byte string (postcard: a varint length, then the bytes), as
/// postcard writes `&[u8]` on the wire, but in one copy: serde serializes a plain
/// `&[u8]` element by element.
#[derive(Clone, Copy)]
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8], what: &str) -> Result<T, HostError> {
    postcard::from_bytes(payload).map_err(|e| bad_request(what, e))
}

/// A postcard value at the start of `payload`, and the raw bytes after it.
fn take<'a, T: Deserialize<'a>>(payload: &'a [u8], what: &str) -> Result<(T, &'a [u8]), HostError> {
    postcard::take_from_bytes(payload).map_err(|e| bad_request(what, e))
}

#[cold]
fn bad_request(what: &str, e: postcard::Error) -> HostError {
    HostError::new(
        ErrorCode::INVALID_INPUT,
        format!("{what} request does not decode: {e}"),
    )
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Served {
    postcard::to_allocvec(value).map_err(|e| {
        HostError::new(
            ErrorCode::ENCODE_FAILED,
            format!("service response does not encode: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::Bytes;

    /// `Bytes` writes what postcard writes for `&[u8]` and `Vec<u8>`.
    #[test]
    fn bytes_serialize_as_postcard_byte_slices() {
        for len in [0usize, 1, 127, 128, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ours = postcard::to_allocvec(&(Some(Bytes(&data)), Bytes(b"k"))).unwrap();
            let theirs = postcard::to_allocvec(&(Some(data.as_slice()), b"k".to_vec())).unwrap();
            assert_eq!(ours, theirs, "{len}");
        }
    }
}
