//! The `membrane` command: call, inspect and precompile membrane modules (SPEC §9).
//!
//! ```text
//! membrane call <module.wasm> <function> [--input FILE | --input-hex HEX] [--raw]
//! membrane call <component.wasm> <function> ['WAVE args'] [--wasi] [--env K=V] [--dir D] ...
//! membrane inspect <module.wasm>
//! membrane precompile <module.wasm> --cache-dir DIR
//! ```
//!
//! Engine limits are flags of every subcommand (`--fuel`, `--timeout-ms`,
//! `--max-memory`, `--max-stack`, `--max-module-size`, `--cache-dir`). Every subcommand
//! reads its module file the same way, at most `--max-module-size` bytes and one.
//! Failures print one line on stderr starting with `error:` and exit with a status that
//! tells their kind, the same for every subcommand ([`EXIT_STATUS`], which
//! `membrane --help` prints; [`exit_code`]).

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use membrane_host::component::ComponentImports;
use membrane_host::{Engine, EngineConfig, Error, ErrorKind, HostFunctions, LimitKind};

/// The exit statuses, as `membrane --help` prints them (see [`exit_code`]).
const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  any other failure (output or cache directory not writable, engine setting refused, ...)
  2  usage error: bad arguments, --input-hex or WAVE arguments, a module or input file that cannot be read
  3  the guest function returned an error
  4  the guest trapped (out of fuel, timeout, ...) or panicked
  5  a limit was hit (module size, memory, table, call depth, ...)
  6  invalid module, abi violation, missing import or unknown function";

/// Run, inspect and precompile membrane WebAssembly modules.
#[derive(Parser, Debug)]
#[command(name = "membrane", version, about, after_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Call a function of a module with raw input bytes and print its output; or a
    /// function of a component with arguments written in WAVE and print its result in
    /// WAVE (`membrane call comp.wasm add '1, 2'` prints `3`).
    #[command(after_help = EXIT_STATUS)]
    Call {
        /// The module or component.
        module: PathBuf,
        /// The function to call (`interface#function` for one inside an exported
        /// interface of a component).
        function: String,
        /// A component's arguments in WAVE, comma-separated (`1, "two", [3]`; a negative
        /// number first may be given as is: `-21`).
        #[arg(allow_hyphen_values = true)]
        args: Option<String>,
        /// Read the input payload from this file (`-` for standard input).
        #[arg(long, conflicts_with = "input_hex")]
        input: Option<PathBuf>,
        /// The input payload as hexadecimal digits, two per byte; whitespace may separate
        /// bytes (`01 02 03`), nothing else is accepted (no `0x`, no signs).
        #[arg(long)]
        input_hex: Option<String>,
        /// Write the output bytes as they are instead of as hexadecimal.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        wasi: Wasi,
        #[command(flatten)]
        limits: Limits,
    },
    /// Show a module's exports, imports, ABI version, size and hash; or a component's
    /// size and hash, and its imports and exports as a WIT world.
    #[command(after_help = EXIT_STATUS)]
    Inspect {
        /// The module.
        module: PathBuf,
        #[command(flatten)]
        limits: Limits,
    },
    /// Compile a module into the on-disk cache, so later loads skip compilation.
    #[command(after_help = EXIT_STATUS)]
    Precompile {
        /// The module.
        module: PathBuf,
        #[command(flatten)]
        limits: Limits,
    },
}

/// What a component that imports WASI preview 2 is granted (nothing unless asked:
/// `docs/components.md`, "WASI preview 2, deny-by-default"). Any of these flags grants
/// WASI; what the component writes to stdout and stderr is printed on stderr.
#[derive(Args, Debug, Default)]
struct Wasi {
    /// Give the component WASI, granting nothing else (no environment, files, clocks
    /// or randomness).
    #[arg(long)]
    wasi: bool,
    /// An environment variable the component sees, `KEY=VALUE` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A directory the component may read, `HOST_DIR` or `HOST_DIR::GUEST_PATH`
    /// (repeatable; the guest path defaults to the host's).
    #[arg(long, value_name = "DIR[::GUEST]")]
    dir: Vec<String>,
    /// A directory the component may read and write, as --dir.
    #[arg(long, value_name = "DIR[::GUEST]")]
    dir_rw: Vec<String>,
    /// Let the component read the host's clocks.
    #[arg(long)]
    clocks: bool,
    /// Let the component draw from the host's random source.
    #[arg(long)]
    random: bool,
}

impl Wasi {
    /// The imports these flags give a component: WASI under the policy they grant, or
    /// none.
    fn imports(&self) -> Result<ComponentImports, Failure> {
        use membrane_host::component::{DirAccess, WasiPolicy};
        let mut imports = ComponentImports::new();
        if self.is_empty() {
            return Ok(imports);
        }
        let mut policy = WasiPolicy::default()
            .clocks(self.clocks)
            .random(self.random);
        for pair in &self.env {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Failure::Usage(format!(
                    "--env takes KEY=VALUE, got `{pair}`"
                )));
            };
            policy = policy.env(key, value);
        }
        let dirs = self.dir.iter().map(|d| (d, DirAccess::ReadOnly));
        for (dir, access) in dirs.chain(self.dir_rw.iter().map(|d| (d, DirAccess::ReadWrite))) {
            let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
            policy = policy.preopen(host, guest, access);
        }
        imports.wasi(policy);
        // The component's output reaches the user on stderr.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .try_init();
        Ok(imports)
    }

    /// Whether no flag asks for WASI.
    fn is_empty(&self) -> bool {
        !self.wasi
            && !self.clocks
            && !self.random
            && self.env.is_empty()
            && self.dir.is_empty()
            && self.dir_rw.is_empty()
    }
}

/// Engine settings shared by every subcommand.
#[derive(Args, Debug)]
struct Limits {
    /// Fuel per call (0 turns metering off).
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// Wall-clock timeout per call in milliseconds (0: none).
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Largest guest linear memory in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    max_memory: usize,
    /// Largest wasm stack in bytes.
    #[arg(long, default_value_t = 512 << 10)]
    max_stack: usize,
    /// Largest module accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_module_size: usize,
    /// Directory of the on-disk compiled-module cache.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl Limits {
    fn engine(&self) -> Result<Engine, Error> {
        Engine::new(
            EngineConfig::default()
                .fuel((self.fuel > 0).then_some(self.fuel))
                .timeout((self.timeout_ms > 0).then(|| Duration::from_millis(self.timeout_ms)))
                .max_memory(self.max_memory)
                .max_wasm_stack(self.max_stack)
                .max_module_size(self.max_module_size)
                .cache_dir(self.cache_dir.clone()),
        )
    }
}

/// A failure of the command, with the message to print.
#[derive(Debug)]
enum Failure {
    /// The command line was wrong: bad arguments or hex, a module or input file named
    /// on it that cannot be read.
    Usage(String),
    /// The output could not be written.
    Output(std::io::Error),
    /// membrane reported an error.
    Membrane(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Membrane(e)
    }
}

/// The exit status for a failure ([`EXIT_STATUS`]): 2 usage, 3 guest error, 4 trap or
/// panic, 5 limit, 6 invalid module or ABI violation, 1 anything else.
fn exit_code(failure: &Failure) -> u8 {
    match failure {
        Failure::Usage(_) => 2,
        Failure::Output(_) => 1,
        Failure::Membrane(e) => match e.kind() {
            ErrorKind::Guest { .. } => 3,
            ErrorKind::Trap(_) | ErrorKind::Panic { .. } => 4,
            ErrorKind::Limit(_) => 5,
            ErrorKind::Abi(_)
            | ErrorKind::InvalidModule { .. }
            | ErrorKind::MissingImports { .. }
            | ErrorKind::UnknownFunction { .. } => 6,
            ErrorKind::InvalidArguments { .. } => 2,
            _ => 1,
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let message = match &failure {
                Failure::Usage(message) => message.clone(),
                Failure::Output(e) => format!("cannot write the output: {e}"),
                Failure::Membrane(e) => e.to_string().replace('\n', " "),
            };
            // Not `eprintln!`, which panics when stderr cannot be written either.
            let _ = writeln!(std::io::stderr().lock(), "error: {message}");
            ExitCode::from(exit_code(&failure))
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Call {
            module,
            function,
            args,
            input,
            input_hex,
            raw,
            wasi,
            limits,
        } => {
            let wasm = read_module(&module, &limits)?;
            if is_component(&wasm) {
                if input.is_some() || input_hex.is_some() || raw {
                    return Err(Failure::Usage(
                        "a component takes WAVE arguments, not --input, --input-hex or --raw"
                            .into(),
                    ));
                }
                let engine = limits.engine()?;
                let imports = wasi.imports()?;
                let mut instance = engine.load_component(&wasm)?.instantiate_with(&imports)?;
                let args = args.unwrap_or_default();
                let result = instance.call_wave(&format!("{function}({args})"))?;
                return write_output(format!("{result}\n").as_bytes());
            }
            if args.is_some() {
                return Err(Failure::Usage(
                    "WAVE arguments are for components; give a module's input with --input or --input-hex"
                        .into(),
                ));
            }
            if !wasi.is_empty() {
                return Err(Failure::Usage(
                    "WASI flags are for components; a module's imports are host functions".into(),
                ));
            }
            let input = match (input, input_hex) {
                (Some(path), _) => read_input(&path)?,
                (None, Some(hex)) => parse_hex(&hex)?,
                (None, None) => Vec::new(),
            };
            let engine = limits.engine()?;
            let module = engine.load(&wasm)?;
            let mut instance = module
                .prepare(&HostFunctions::<()>::new())?
                .instantiate(())?;
            let output = instance.call_raw(&function, &input)?;
            if raw {
                write_output(&output)
            } else {
                write_output(format!("{}\n", to_hex(&output)).as_bytes())
            }
        }
        Command::Inspect {
            module: path,
            limits,
        } => {
            let wasm = read_module(&path, &limits)?;
            let engine = limits.engine()?;
            if is_component(&wasm) {
                let component = engine.load_component(&wasm)?;
                // Its WIT; for a component WIT cannot describe, why, and its functions.
                let described = component.wit().unwrap_or_else(|e| {
                    let mut text = format!("({e})\nfunctions:\n");
                    for f in component.functions() {
                        text += &format!("  {f}\n");
                    }
                    text
                });
                let report = format!(
                    "component:   {}\nsize:        {} bytes\nblake3:      {}\n{described}",
                    path.display(),
                    wasm.len(),
                    blake3::hash(&wasm).to_hex(),
                );
                return write_output(report.as_bytes());
            }
            let module = engine.load(&wasm)?;
            let mut functions: Vec<&str> = module.functions().collect();
            functions.sort_unstable();
            let mut report = format!(
                "module:      {}\nsize:        {} bytes\nblake3:      {}\nabi version: {}\nfunctions:   {}\nexports:\n",
                path.display(),
                wasm.len(),
                blake3::hash(&wasm).to_hex(),
                membrane_types::ABI_VERSION,
                functions.join(", ")
            );
            for (name, ty) in module.exports() {
                report += &format!("  {name}: {ty}\n");
            }
            report += "imports:\n";
            for (m, n) in module.imports() {
                report += &format!("  {m}::{n}\n");
            }
            write_output(report.as_bytes())
        }
        Command::Precompile { module, limits } => {
            if limits.cache_dir.is_none() {
                return Err(Failure::Usage("precompile needs --cache-dir DIR".into()));
            }
            let wasm = read_module(&module, &limits)?;
            let engine = limits.engine()?;
            match engine.precompile(&wasm)? {
                Some(artifact) => write_output(format!("{}\n", artifact.display()).as_bytes()),
                None => Err(Failure::Usage(
                    "the cache directory could not be used".into(),
                )),
            }
        }
    }
}

/// Writes the command's output to standard output and flushes it, so that a failure to
/// write (a full disk, a closed pipe) is reported, exit status 1, instead of making
/// `println!` panic or going unnoticed at exit.
/// Whether `wasm` is a component (its preamble's layer field is 1) rather than a core
/// module.
fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[6..8] == [1, 0]
}

fn write_output(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Failure::Output)
}

/// Reads the module file named on the command line, as `Engine::load_file` would: at
/// most `--max-module-size` bytes and one, so that a pipe or a device is not read
/// without end; a regular file larger than the limit is refused from its size, a file
/// that delivers more after one byte past it, by the engine (exit status 5). A file that
/// cannot be read is a usage error (2), as for `--input`.
fn read_module(path: &Path, limits: &Limits) -> Result<Vec<u8>, Failure> {
    let cannot = |e: std::io::Error| Failure::Usage(format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    let limit = limits.max_module_size;
    if meta.is_file() && meta.len() > u64::try_from(limit).unwrap_or(u64::MAX) {
        let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        return Err(Failure::Membrane(
            ErrorKind::Limit(LimitKind::ModuleSize { size, limit }).into(),
        ));
    }
    let mut wasm = Vec::new();
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(bound).read_to_end(&mut wasm).map_err(cannot)?;
    Ok(wasm)
}

fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    let mut input = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut input).map(drop)
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut input))
            .map(drop)
    };
    result.map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(input)
}

/// Hex digits to bytes: two digits per byte, whitespace between bytes only. Digits are
/// read one by one (`char::to_digit`): `u8::from_str_radix` would take `+1` for a byte.
fn parse_hex(hex: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for group in hex.split_ascii_whitespace() {
        let digits = group
            .chars()
            .map(hex_digit)
            .collect::<Result<Vec<u8>, Failure>>()?;
        if !digits.len().is_multiple_of(2) {
            return Err(Failure::Usage(format!(
                "--input-hex: `{group}` is not a whole number of bytes (an even number of hex digits)"
            )));
        }
        bytes.extend(digits.chunks_exact(2).map(|pair| pair[0] << 4 | pair[1]));
    }
    Ok(bytes)
}

/// The value of one hex digit.
fn hex_digit(c: char) -> Result<u8, Failure> {
    c.to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
        .ok_or_else(|| Failure::Usage(format!("--input-hex: `{c}` is not a hex digit")))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(parse_hex("00 ff 10").unwrap(), [0, 255, 16]);
        assert_eq!(parse_hex("\t00FF\n 10 ").unwrap(), [0, 255, 16]);
        assert_eq!(to_hex(&[0, 255, 16]), "00ff10");
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_hex("  ").unwrap(), Vec::<u8>::new());
        let refused = |hex: &str, expected: &str| match parse_hex(hex) {
            Err(Failure::Usage(m)) => assert_eq!(m, expected, "{hex:?}"),
            other => panic!("{hex:?}: {other:?}"),
        };
        let odd = |group: &str| {
            format!(
                "--input-hex: `{group}` is not a whole number of bytes (an even number of hex digits)"
            )
        };
        refused("abc", &odd("abc"));
        refused("0 1", &odd("0"));
        refused("zz", "--input-hex: `z` is not a hex digit");
        // `u8::from_str_radix` takes a leading `+`: `+1+2` used to be 01 02.
        refused("+1+2", "--input-hex: `+` is not a hex digit");
        refused("-1", "--input-hex: `-` is not a hex digit");
        refused("0x01", "--input-hex: `x` is not a hex digit");
        refused("\u{a0}01", "--input-hex: `\u{a0}` is not a hex digit");
    }

    #[test]
    fn command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
