//! Fuzz target: arbitrary valid modules (wasm-smith) loaded, linked, instantiated and
//! called with every limit on.
//!
//! Half of the inputs make a module of any shape: almost all are refused at load (not a
//! membrane module, a missing or mistyped export) and the target checks they are
//! refused cleanly, with the right kind of error. The other half make modules with the
//! membrane ABI's imports and exports (wasm-smith's `module_shape`) and random code in
//! every function: the allocation entry, the guest functions and the start function
//! (half of them without trapping instructions, and half with a working allocation
//! entry put in place of the random one, so that calls get further).
//! Each is instantiated and every function called, twice, through host functions that
//! echo and that call back into the same instance. The host must never panic, never
//! report a guest's misbehaviour as a host failure, and never reuse a poisoned instance.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use membrane_host::{
    Engine, EngineConfig, Error, ErrorKind, HostError, HostFunctions, InstancePre, Module,
};

/// The imports and exports of a membrane module; wasm-smith writes the code.
const SHAPE: &str = r#"
(module
  (import "membrane" "crc32" (func (param i32 i32 i32) (result i32)))
  (import "membrane" "panic" (func (param i32 i32)))
  (import "membrane_host" "echo" (func (param i32 i32 i32 i32) (result i64)))
  (import "membrane_host" "call_back" (func (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i32 i32) (result i32) unreachable)
  (func (export "f0") (param i32 i32) (result i64) unreachable)
  (func (export "f1") (param i32 i32) (result i64) unreachable)
)
"#;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(
            EngineConfig::default()
                .fuel(Some(100_000))
                .timeout(Some(Duration::from_millis(500)))
                .max_memory(16 << 20)
                .max_table_elements(10_000)
                .max_wasm_stack(256 << 10)
                .max_module_size(1 << 20)
                .max_call_depth(4),
        )
        .expect("engine")
    })
}

fn shape() -> &'static [u8] {
    static SHAPE_WASM: OnceLock<Vec<u8>> = OnceLock::new();
    SHAPE_WASM.get_or_init(|| wat::parse_str(SHAPE).expect("shape wat"))
}

fn host() -> HostFunctions<()> {
    let mut host = HostFunctions::new();
    host.register_raw("echo", |_ctx, input| Ok(input.to_vec()));
    host.register_raw("call_back", |ctx, input| {
        ctx.call_raw("f0", input).map_err(HostError::from)
    });
    host
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(shaped), Ok(no_traps), Ok(working_alloc)) = (
        bool::arbitrary(&mut u),
        bool::arbitrary(&mut u),
        bool::arbitrary(&mut u),
    ) else {
        return;
    };
    let mut config = wasm_smith::Config {
        // Features wasmtime's default configuration here does not enable: such modules
        // would only test that invalid modules are refused, which the first half does.
        gc_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        max_memories: 1,
        max_tables: 2,
        max_funcs: 20,
        max_instructions: 200,
        max_data_segments: 10,
        max_memory32_bytes: 32 << 20,
        // Without traps (no `unreachable`, guarded loads, stores and divisions) the code
        // runs further: past the allocation entry, into the functions and their output.
        disallow_traps: no_traps,
        ..wasm_smith::Config::default()
    };
    if shaped {
        config.module_shape = Some(shape().to_vec());
    }
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        return;
    };
    let mut wasm = module.to_bytes();
    if shaped && working_alloc {
        wasm = with_working_alloc(&wasm).expect("wasm-smith output re-encodes");
    }
    let input = u.bytes(u.len().min(64)).unwrap_or_default().to_vec();

    let loaded = engine().load(&wasm);
    let module = match loaded {
        Ok(module) => module,
        Err(e) => {
            // wasm-smith sometimes writes the shape's types in a way that needs the gc
            // proposal (off in this engine, on purpose): a clean refusal, fine.
            let needs_disabled_feature = matches!(
                e.kind(),
                ErrorKind::InvalidModule { reason } if reason.contains("disallowed")
            );
            assert!(
                !shaped || needs_disabled_feature,
                "a module with the membrane shape is refused: {e:?}"
            );
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Abi(_) | ErrorKind::InvalidModule { .. } | ErrorKind::Limit(_)
                ),
                "load refused with the wrong kind: {e:?}"
            );
            return;
        }
    };
    let pre = match module.prepare(&host()) {
        Ok(pre) => pre,
        Err(e) => {
            assert!(
                !shaped,
                "a module with the membrane shape does not link: {e:?}"
            );
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::MissingImports { .. } | ErrorKind::Abi(_)
                ),
                "prepare refused with the wrong kind: {e:?}"
            );
            return;
        }
    };
    exercise(&module, &pre, &input);
});

/// Instantiates and calls every function twice; checks the kinds and the poisoning.
fn exercise(module: &Module, pre: &InstancePre<()>, input: &[u8]) {
    let mut instance = match pre.instantiate(()) {
        Ok(instance) => instance,
        Err(e) => {
            assert_guest_caused(&e);
            return;
        }
    };
    let names: Vec<String> = module.functions().map(str::to_string).collect();
    for _round in 0..2 {
        for name in &names {
            let was_poisoned = instance.is_poisoned();
            match instance.call_raw(name, input) {
                Ok(_) => assert!(!was_poisoned, "a poisoned instance answered"),
                Err(e) if was_poisoned => {
                    assert!(matches!(e.kind(), ErrorKind::Poisoned { .. }), "{e:?}");
                }
                Err(e) => {
                    assert_guest_caused(&e);
                    let poisons = !matches!(e.kind(), ErrorKind::Guest { .. });
                    assert_eq!(instance.is_poisoned(), poisons, "{e:?}");
                }
            }
        }
    }
}

/// Whatever a module does, the error must blame the module, not the host.
fn assert_guest_caused(e: &Error) {
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Guest { .. }
                | ErrorKind::Panic { .. }
                | ErrorKind::Trap(_)
                | ErrorKind::Abi(_)
                | ErrorKind::Limit(_)
        ),
        "a guest's misbehaviour reported as {e:?}"
    );
}

/// `wasm` with the body of its allocation entry replaced by a working, stateless one:
/// grow memory by `len / 64 KiB + 1` pages and return the start of the new pages (0 if
/// memory cannot grow). Random allocation entries mostly return 0 or a bad pointer, so
/// the guest functions behind them would rarely run.
fn with_working_alloc(wasm: &[u8]) -> Option<Vec<u8>> {
    use wasm_encoder::reencode::{Reencode, utils};
    use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

    let mut imported_funcs = 0;
    let mut alloc_func = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if matches!(import.ok()?.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        imported_funcs += 1;
                    }
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.ok()?;
                    if export.name == "__membrane_alloc" && export.kind == ExternalKind::Func {
                        alloc_func = Some(export.index);
                    }
                }
            }
            _ => {}
        }
    }
    let body = alloc_func?.checked_sub(imported_funcs)?;

    struct ReplaceAlloc {
        body: u32,
        seen: u32,
    }
    impl Reencode for ReplaceAlloc {
        type Error = std::convert::Infallible;
        fn parse_function_body(
            &mut self,
            code: &mut wasm_encoder::CodeSection,
            func: wasmparser::FunctionBody<'_>,
        ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
            let index = self.seen;
            self.seen += 1;
            if index != self.body {
                return utils::parse_function_body(self, code, func);
            }
            use wasm_encoder::{BlockType, Instruction as I, ValType};
            let mut f = wasm_encoder::Function::new([(1, ValType::I32)]);
            for i in [
                I::LocalGet(0),
                I::I32Const(16),
                I::I32ShrU,
                I::I32Const(1),
                I::I32Add,
                I::MemoryGrow(0),
                I::LocalTee(2),
                I::I32Const(-1),
                I::I32Eq,
                I::If(BlockType::Result(ValType::I32)),
                I::I32Const(0),
                I::Else,
                I::LocalGet(2),
                I::I32Const(16),
                I::I32Shl,
                I::End,
                I::End,
            ] {
                f.instruction(&i);
            }
            code.function(&f);
            Ok(())
        }
    }
    let mut module = wasm_encoder::Module::new();
    ReplaceAlloc { body, seen: 0 }
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .ok()?;
    Some(module.finish())
}
