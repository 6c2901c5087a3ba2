//! WASI preview 2 for components (feature `wasi`), deny-by-default: a [`WasiPolicy`]
//! grants nothing until the host grants each capability (environment variables,
//! arguments, preopened directories, clocks, randomness, stdin); stdout and stderr are
//! captured as bounded `tracing` lines. Sockets are never linked.
//!
//! Built on wasmtime-wasi's synchronous p2 implementation, linked interface by
//! interface (those of `wasi:sockets` left out), with deterministic stand-ins for the
//! clocks and the random sources a policy does not grant: wasmtime-wasi links them
//! whatever the context says, and the Rust standard library imports them.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult, subscribe};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{
    Deterministic, FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder,
    WasiCtxView, WasiView,
};

use membrane_runtime::{ErrorKind, Result};

use super::imports::ComponentState;
use crate::store::StoreData;

type Data = StoreData<ComponentState>;

/// The `tracing` target of a component's captured stdout and stderr.
pub const OUTPUT_TARGET: &str = "membrane::component";

/// What a component may reach through WASI preview 2. [`WasiPolicy::default`] grants
/// **nothing**; each capability is granted explicitly:
///
/// | capability | denied (the default) | granted by |
/// |------------|----------------------|------------|
/// | environment variables | none (`std::env::var` finds nothing) | [`WasiPolicy::env`] |
/// | arguments | none | [`WasiPolicy::arg`] |
/// | files | no preopened directory: every path fails to open | [`WasiPolicy::preopen`] (read-only or read-write) |
/// | wall clock | frozen at the Unix epoch (`now` is 0 s, 0 ns) | [`WasiPolicy::clocks`] |
/// | monotonic clock | frozen at 0 (never advances) | [`WasiPolicy::clocks`] |
/// | random, insecure random | zero bytes; the insecure seed is 0 | [`WasiPolicy::random`] |
/// | stdin | empty (reads end at once) | [`WasiPolicy::stdin`] |
/// | stdout, stderr | captured as `tracing` lines, bounded | [`WasiPolicy::max_line_len`], [`WasiPolicy::max_output_per_call`] |
/// | sockets, name lookup | not supported: never linked | — |
///
/// A component that imports `wasi:sockets/*` is refused with
/// [`ErrorKind::MissingImports`] naming those imports, whatever the policy.
///
/// Denied clocks and random sources still answer (the Rust standard library calls them
/// for `SystemTime`, `Instant` and `HashMap`'s keys): with constants, so a component
/// learns nothing of the host's time and gets no entropy. Zero bytes are not random:
/// a component that needs secrets must be granted [`WasiPolicy::random`].
///
/// Sleeping (`wasi:clocks/monotonic-clock`'s `subscribe-duration` and
/// `subscribe-instant`, then `wasi:io/poll`) waits in the host on the calling thread,
/// granted clocks or not; the call's timeout stops the guest once that wait returns, not
/// during it. Output written to stdout or stderr never blocks.
///
/// ```
/// use membrane_wasmtime::component::{DirAccess, WasiPolicy};
///
/// let policy = WasiPolicy::default()
///     .env("GREETING", "hello")
///     .arg("greeter")
///     .preopen("/srv/data", "/data", DirAccess::ReadOnly)
///     .clocks(true)
///     .max_line_len(200);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug)]
pub struct WasiPolicy {
    env: Vec<(String, String)>,
    args: Vec<String>,
    preopens: Vec<Preopen>,
    clocks: bool,
    random: bool,
    stdin: Bytes,
    max_line_len: usize,
    max_output_per_call: usize,
}

/// How a preopened directory may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirAccess {
    /// Its files and directories may be read, listed and stat'ed; nothing written,
    /// created, renamed or removed.
    ReadOnly,
    /// Read and written: files created, written, renamed and removed, directories
    /// created and removed, inside it only.
    ReadWrite,
}

#[derive(Clone, Debug)]
struct Preopen {
    host: PathBuf,
    guest: String,
    access: DirAccess,
}

impl Default for WasiPolicy {
    /// Nothing granted; lines of at most 1 KiB, 64 KiB of output per call.
    fn default() -> Self {
        WasiPolicy {
            env: Vec::new(),
            args: Vec::new(),
            preopens: Vec::new(),
            clocks: false,
            random: false,
            stdin: Bytes::new(),
            max_line_len: 1024,
            max_output_per_call: 64 << 10,
        }
    }
}

impl WasiPolicy {
    /// Nothing granted (the same as [`WasiPolicy::default`]).
    pub fn deny_all() -> WasiPolicy {
        WasiPolicy::default()
    }

    /// Grants the environment variable `key` with `value` (the host's own environment
    /// is never inherited).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Appends `arg` to the arguments (the first is, by convention, the program's
    /// name).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Grants the host directory `host` as `guest` in the component (an absolute path
    /// such as `/data`, or `.`): paths under it open, with `access`; no path outside a
    /// preopened directory does (`..` and symbolic links cannot leave it). The
    /// directory is opened at each instantiation: one that cannot be opened then fails
    /// it with [`ErrorKind::Config`].
    pub fn preopen(mut self, host: impl Into<PathBuf>, guest: &str, access: DirAccess) -> Self {
        self.preopens.push(Preopen {
            host: host.into(),
            guest: guest.to_string(),
            access,
        });
        self
    }

    /// Grants (or, `false`, denies) the host's wall clock and monotonic clock.
    pub fn clocks(mut self, grant: bool) -> Self {
        self.clocks = grant;
        self
    }

    /// Grants (or, `false`, denies) the host's random sources (`wasi:random/random`
    /// from a cryptographically secure generator, `insecure` and `insecure-seed`).
    pub fn random(mut self, grant: bool) -> Self {
        self.random = grant;
        self
    }

    /// What the component reads on stdin (each instance reads it from the start).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Bytes::from(bytes.into());
        self
    }

    /// The longest captured line, in bytes (at least 1): a longer one is cut there and
    /// emitted with `truncated = true`.
    pub fn max_line_len(mut self, bytes: usize) -> Self {
        self.max_line_len = bytes.max(1);
        self
    }

    /// How many bytes of stdout and stderr (together) a call may write (the
    /// instantiation counts as a call): past it the rest of the call's output is
    /// dropped, with one warning.
    pub fn max_output_per_call(mut self, bytes: usize) -> Self {
        self.max_output_per_call = bytes;
        self
    }

    /// The WASI state of a new instance named `name`.
    pub(crate) fn state(&self, name: &Arc<str>) -> Result<WasiState> {
        let output = Output::new(name.clone(), self.max_line_len, self.max_output_per_call);
        let mut builder = WasiCtxBuilder::new();
        builder
            .allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdin(MemoryInputPipe::new(self.stdin.clone()))
            .stdout(output.stream(Stream::Stdout))
            .stderr(output.stream(Stream::Stderr))
            .envs(&self.env)
            .args(&self.args);
        if !self.clocks {
            builder.wall_clock(Frozen).monotonic_clock(Frozen);
        }
        if !self.random {
            builder
                .secure_random(Deterministic::new(vec![0]))
                .insecure_random(Deterministic::new(vec![0]))
                .insecure_random_seed(0);
        }
        for preopen in &self.preopens {
            let perms = match preopen.access {
                DirAccess::ReadOnly => FsPerms::ReadOnly,
                DirAccess::ReadWrite => FsPerms::ReadWrite,
            };
            builder
                .preopened_dir(&preopen.host, &preopen.guest, perms)
                .map_err(|e| ErrorKind::Config {
                    reason: format!(
                        "cannot open the preopened directory {}: {e:#}",
                        preopen.host.display()
                    ),
                })?;
        }
        Ok(WasiState {
            ctx: builder.build(),
            table: ResourceTable::new(),
            output,
        })
    }
}

/// The WASI side of a component's store.
pub(crate) struct WasiState {
    ctx: WasiCtx,
    table: ResourceTable,
    pub(crate) output: Output,
}

impl WasiView for Data {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // WASI is linked only into instances made with a policy, whose state has it.
        let wasi = self
            .state
            .wasi
            .as_mut()
            .expect("WASI linked into an instance without a WASI policy");
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

/// The WASI interfaces [`link`] provides (any `0.2.x` version of each).
const LINKED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// Whether [`link`] provides the imported interface `name` (`wasi:cli/environment@0.2.3`).
pub(crate) fn links(name: &str) -> bool {
    match name.split_once('@') {
        Some((interface, version)) => version.starts_with("0.2.") && LINKED.contains(&interface),
        None => false,
    }
}

/// The resource table of WASI's streams and pollables.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the interfaces of [`LINKED`] (wasmtime-wasi's synchronous p2 implementation;
/// its `add_to_linker_sync` without `wasi:sockets`).
pub(crate) fn link(linker: &mut Linker<Data>) -> wasmtime::Result<()> {
    let l = linker;
    sync::io::error::add_to_linker::<Data, HasIo>(l, |t| t.ctx().table)?;
    sync::io::poll::add_to_linker::<Data, HasIo>(l, |t| t.ctx().table)?;
    sync::io::streams::add_to_linker::<Data, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<Data, WasiClocks>(l, |t| t.clocks())?;
    // The monotonic clock's waits end by the running call's deadline (`Capped`).
    clocks::monotonic_clock::add_to_linker::<Data, Capped>(l, |t| {
        let deadline = t.timer.deadline_instant();
        CappedView {
            clocks: t.clocks(),
            deadline,
        }
    })?;
    sync::filesystem::types::add_to_linker::<Data, WasiFilesystem>(l, |t| t.filesystem())?;
    filesystem::preopens::add_to_linker::<Data, WasiFilesystem>(l, |t| t.filesystem())?;
    random::random::add_to_linker::<Data, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<Data, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<Data, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::environment::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::stdin::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::stdout::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::stderr::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::terminal_input::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::terminal_output::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::terminal_stdin::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::terminal_stdout::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    cli::terminal_stderr::add_to_linker::<Data, WasiCli>(l, |t| t.cli())?;
    Ok(())
}

/// The monotonic clock of `wasi:clocks`, wasmtime-wasi's but for its waits: a
/// pollable from `subscribe-duration` or `subscribe-instant` is ready by the running
/// call's deadline at the latest (its timeout, or the chain's deadline in a runtime),
/// so that a guest asking to sleep for an hour is back in its code, where the timeout
/// stops it, when the call's time is up. Without a timeout, waits are as asked.
struct Capped;

impl HasData for Capped {
    type Data<'a> = CappedView<'a>;
}

struct CappedView<'a> {
    clocks: wasmtime_wasi::clocks::WasiClocksCtxView<'a>,
    deadline: Option<std::time::Instant>,
}

impl CappedView<'_> {
    /// A pollable ready after `duration`, or by the deadline if that comes first.
    fn sleep(&mut self, duration: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let wanted = tokio::time::Instant::now().checked_add(duration);
        let cap = self.deadline.map(tokio::time::Instant::from_std);
        let until = match (wanted, cap) {
            (Some(wanted), Some(cap)) => Some(wanted.min(cap)),
            (wanted, cap) => wanted.or(cap),
        };
        let sleep = self.clocks.table.push(Sleep(until))?;
        subscribe(self.clocks.table, sleep)
    }
}

impl clocks::monotonic_clock::Host for CappedView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        clocks::monotonic_clock::Host::now(&mut self.clocks)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        clocks::monotonic_clock::Host::resolution(&mut self.clocks)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let now = clocks::monotonic_clock::Host::now(&mut self.clocks)?;
        self.sleep(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(Duration::from_nanos(duration))
    }
}

/// A wait until an instant (`None`: a wait too long to represent, which only a
/// deadline ends).
struct Sleep(Option<tokio::time::Instant>);

impl Pollable for Sleep {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let until = self.0;
        Box::pin(async move {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        })
    }
}

/// A denied clock: the wall clock stays at the Unix epoch, the monotonic clock at 0.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}

/// The stream a captured line came from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// An instance's captured stdout and stderr, shared by the streams WASI hands out
/// and the instance (which begins and ends each call's budget).
#[derive(Clone)]
pub(crate) struct Output {
    inner: Arc<Mutex<Capture>>,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output").finish_non_exhaustive()
    }
}

/// The state of the capture: the current line of each stream (at most `max_line`
/// bytes kept), and what the running call wrote.
struct Capture {
    name: Arc<str>,
    max_line: usize,
    max_call: usize,
    /// Bytes written in the running call.
    used: usize,
    /// Whether the running call was told its output is dropped.
    warned: bool,
    lines: [Line; 2],
}

#[derive(Default)]
struct Line {
    bytes: Vec<u8>,
    /// Whether bytes past `max_line` were dropped from it.
    cut: bool,
}

impl Output {
    fn new(name: Arc<str>, max_line: usize, max_call: usize) -> Output {
        Output {
            inner: Arc::new(Mutex::new(Capture {
                name,
                max_line,
                max_call,
                used: 0,
                warned: false,
                lines: [Line::default(), Line::default()],
            })),
        }
    }

    fn stream(&self, stream: Stream) -> CapturedStream {
        CapturedStream {
            output: self.clone(),
            stream,
        }
    }

    fn capture(&self) -> std::sync::MutexGuard<'_, Capture> {
        // A panic while the lock is held (in a `tracing` subscriber) leaves the capture
        // as consistent as any line: go on with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new call: its output budget is whole again.
    pub(crate) fn begin_call(&self) {
        let mut capture = self.capture();
        capture.used = 0;
        capture.warned = false;
    }

    /// The end of a call: a line left without its newline is emitted.
    pub(crate) fn end_call(&self) {
        let mut capture = self.capture();
        for stream in [Stream::Stdout, Stream::Stderr] {
            capture.emit(stream);
        }
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        self.capture().write(stream, bytes);
    }
}

impl Capture {
    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        let room = self.max_call.saturating_sub(self.used);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        self.used += kept.len();
        let mut rest = kept;
        while !rest.is_empty() {
            let (part, newline) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            let max = self.max_line;
            let line = &mut self.lines[stream as usize];
            let fits = max.saturating_sub(line.bytes.len()).min(part.len());
            line.bytes.extend_from_slice(&part[..fits]);
            line.cut |= fits < part.len();
            if newline {
                self.emit(stream);
                rest = &rest[part.len() + 1..];
            } else {
                rest = &[];
            }
        }
        if !dropped.is_empty() && !self.warned {
            self.warned = true;
            for stream in [Stream::Stdout, Stream::Stderr] {
                self.emit(stream);
            }
            tracing::warn!(
                target: OUTPUT_TARGET,
                component = %self.name,
                stream = stream.name(),
                limit = self.max_call,
                "output limit reached: the rest of this call's output is dropped"
            );
        }
    }

    /// Emits the current line of `stream`, if any, as a `tracing` event.
    fn emit(&mut self, stream: Stream) {
        let line = &mut self.lines[stream as usize];
        if line.bytes.is_empty() && !line.cut {
            return;
        }
        let mut bytes = std::mem::take(&mut line.bytes);
        let cut = std::mem::take(&mut line.cut);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = String::from_utf8_lossy(&bytes);
        let stream = stream.name();
        if cut {
            tracing::info!(target: OUTPUT_TARGET, component = %self.name, stream, truncated = true, "{text}");
        } else {
            tracing::info!(target: OUTPUT_TARGET, component = %self.name, stream, "{text}");
        }
    }
}

/// stdout or stderr of one instance, as WASI hands it to the component.
#[derive(Clone)]
struct CapturedStream {
    output: Output,
    stream: Stream,
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Writes never block: whatever the budget does not take is dropped.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
