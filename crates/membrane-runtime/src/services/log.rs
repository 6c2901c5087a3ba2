//! The log service: a guest's log lines become events of the host's [`LogSink`]
//! (by default [`TracingLog`]: `tracing` events), bounded in size and per call.

use std::fmt;

/// The level of a log line, as the guest gives it (`membrane_guest::log::Level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected the module handled.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The level of its wire value (0 trace … 4 error), if it is one.
    pub fn from_wire(value: u8) -> Option<LogLevel> {
        Some(match value {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// What produced a log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogSource {
    /// A log line of the guest (`membrane_guest::log`).
    Guest,
    /// A breakpoint marker (`membrane_guest::debug::breakpoint`): the message is its
    /// label; the level is [`LogLevel::Debug`].
    Breakpoint,
    /// A failed debug assertion (`membrane_guest::debug::assert`): the message is the
    /// assertion's; the level is [`LogLevel::Warn`]. The guest also gets the failure as
    /// an error (`ErrorCode::ASSERTION_FAILED`).
    Assertion,
}

/// One log line of a module, as a [`LogSink`] receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogRecord<'a> {
    /// The module's name in its runtime.
    pub module: &'a str,
    /// The request of the call that logged (0 for a lifecycle hook: no request).
    pub request_id: u64,
    /// Its level.
    pub level: LogLevel,
    /// What produced it.
    pub source: LogSource,
    /// The text (UTF-8, at most [`LogLimits::max_message_len`] bytes).
    pub message: &'a str,
}

/// Where a runtime sends its modules' log lines. Called on the thread of the call that
/// logs, while the guest waits: keep it quick.
pub trait LogSink: Send + Sync + 'static {
    /// Records one line.
    fn log(&self, record: &LogRecord<'_>);
}

/// The default [`LogSink`]: each line becomes a `tracing` event of target
/// `membrane::guest` at the line's level, with the fields `module`, `request_id` and
/// `source` (`guest`, `breakpoint`, `assertion`), and the message as the event's
/// message.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingLog;

impl LogSink for TracingLog {
    fn log(&self, record: &LogRecord<'_>) {
        let source = match record.source {
            LogSource::Guest => "guest",
            LogSource::Breakpoint => "breakpoint",
            LogSource::Assertion => "assertion",
        };
        let (module, request_id, message) = (record.module, record.request_id, record.message);
        // `tracing`'s macros need the level as a constant.
        match record.level {
            LogLevel::Trace => {
                tracing::trace!(target: "membrane::guest", module, request_id, source, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "membrane::guest", module, request_id, source, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "membrane::guest", module, request_id, source, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "membrane::guest", module, request_id, source, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "membrane::guest", module, request_id, source, "{message}")
            }
        }
    }
}

/// How much one call of a module may log: a module cannot flood its host's log.
///
/// Breakpoints and failed assertions count as log lines. A line past a limit is
/// refused with `ErrorCode::LIMIT_EXCEEDED` (the guest learns it; the host's log
/// gets one warning per call that hit the budget, target `membrane::runtime`).
///
/// `#[non_exhaustive]` with public fields and chainable setters of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLimits {
    /// The longest message, in bytes. Default: 4 KiB.
    pub max_message_len: usize,
    /// The most lines per call (each call of a module to another has its own budget).
    /// Default: 256.
    pub max_lines_per_call: u32,
    /// The most message bytes per call. Default: 64 KiB.
    pub max_bytes_per_call: usize,
}

impl Default for LogLimits {
    fn default() -> LogLimits {
        LogLimits {
            max_message_len: 4096,
            max_lines_per_call: 256,
            max_bytes_per_call: 64 * 1024,
        }
    }
}

/// Chainable setters, one per field.
impl LogLimits {
    crate::__chainable_setters! { LogLimits,
        max_message_len => max_message_len: usize;
        max_lines_per_call => max_lines_per_call: u32;
        max_bytes_per_call => max_bytes_per_call: usize;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer, for the `fmt` subscriber.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The default sink makes each line a `tracing` event of target `membrane::guest`
    /// at the line's level, with the module, the request and the source.
    #[test]
    fn tracing_log_emits_one_event_per_line_at_its_level() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .without_time()
            .finish();
        let levels = [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ];
        tracing::subscriber::with_default(subscriber, || {
            for level in levels {
                TracingLog.log(&LogRecord {
                    module: "orders",
                    request_id: 42,
                    level,
                    source: LogSource::Breakpoint,
                    message: &format!("line at {level}"),
                });
            }
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        for (line, level) in lines.iter().zip(levels) {
            assert!(line.contains(&level.to_string().to_uppercase()), "{line}");
            assert!(line.contains("membrane::guest"), "{line}");
            assert!(line.contains("orders"), "{line}");
            assert!(line.contains("request_id=42"), "{line}");
            assert!(line.contains("breakpoint"), "{line}");
            assert!(line.contains(&format!("line at {level}")), "{line}");
        }
    }

    #[test]
    fn wire_levels_are_0_to_4() {
        assert_eq!(LogLevel::from_wire(0), Some(LogLevel::Trace));
        assert_eq!(LogLevel::from_wire(4), Some(LogLevel::Error));
        assert_eq!(LogLevel::from_wire(5), None);
    }
}
