//! WebAssembly components (feature `component`, `docs/components.md`): loaded on the
//! same [`Engine`] as core modules, described from their type (every exported function,
//! those inside exported interfaces too, with parameter names and types), and called
//! dynamically with [`Val`]s or with arguments and results written in WAVE (the
//! WebAssembly Value Encoding), under the same limits as core modules: fuel, the
//! timeout, memory and tables, the stack; a trap or a limit poisons the instance.
//!
//! A module of this crate rather than a crate of its own: a component runs in the
//! store a core instance runs in (the same limiter, timer, fuel and trap
//! classification), which this crate keeps to itself.
//!
//! ```
//! use membrane_wasmtime::{Engine, EngineConfig};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let wasm = wat::parse_str(r#"(component
//!   (core module $m
//!     (func (export "add") (param i32 i32) (result i32)
//!       (i32.add (local.get 0) (local.get 1))))
//!   (core instance $i (instantiate $m))
//!   (func (export "add") (param "a" u32) (param "b" u32) (result u32)
//!     (canon lift (core func $i "add"))))"#)?;
//! let component = engine.load_component(&wasm)?;
//! assert_eq!(component.functions()[0].to_string(), "add: func(a: u32, b: u32) -> u32");
//! let mut instance = component.instantiate()?;
//! assert_eq!(instance.call_wave("add(1, 2)")?, "3");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{self as wc, ComponentExportIndex};
pub use wasmtime::component::{Type, Val};

use membrane_runtime::{Error, ErrorKind, Result};

use crate::call::begin_top_level_call;
use crate::engine::Engine;
use crate::instance::{CallLimits, new_store};
use crate::store::CancelHandle;
use crate::trap::classify;

mod imports;
#[cfg(feature = "wasi")]
mod wasi;

use imports::ComponentStore;
pub use imports::{ComponentHostContext, ComponentImports, HostFnError};
#[cfg(feature = "wasi")]
pub use wasi::{DirAccess, OUTPUT_TARGET, WasiPolicy};

/// A loaded component.
#[derive(Clone)]
pub struct Component {
    engine: Engine,
    inner: wc::Component,
    hash: [u8; 32],
}

/// An exported function of a component, as its type describes it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ComponentFunction {
    /// Its name: `name` for a function the component exports itself,
    /// `interface#name` for one inside an exported interface (instance).
    pub name: String,
    /// Its parameters, with their names, in order.
    pub params: Vec<(String, Type)>,
    /// Its result, if it has one.
    pub result: Option<Type>,
}

/// `name: func(a: u32, b: string) -> list<u8>`, the function's signature in WIT's
/// syntax (anonymous types written out structurally).
impl fmt::Display for ComponentFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: func(", self.name)?;
        for (i, (name, ty)) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: ")?;
            write_type(f, ty)?;
        }
        f.write_str(")")?;
        if let Some(result) = &self.result {
            f.write_str(" -> ")?;
            write_type(f, result)?;
        }
        Ok(())
    }
}

/// A component type in WIT's syntax; named types (records, variants, enums, flags,
/// resources) are written out by their structure, since a component's type keeps no
/// names for them.
fn write_type(f: &mut fmt::Formatter<'_>, ty: &Type) -> fmt::Result {
    match ty {
        Type::Bool => f.write_str("bool"),
        Type::S8 => f.write_str("s8"),
        Type::U8 => f.write_str("u8"),
        Type::S16 => f.write_str("s16"),
        Type::U16 => f.write_str("u16"),
        Type::S32 => f.write_str("s32"),
        Type::U32 => f.write_str("u32"),
        Type::S64 => f.write_str("s64"),
        Type::U64 => f.write_str("u64"),
        Type::Float32 => f.write_str("f32"),
        Type::Float64 => f.write_str("f64"),
        Type::Char => f.write_str("char"),
        Type::String => f.write_str("string"),
        Type::List(list) => {
            f.write_str("list<")?;
            write_type(f, &list.ty())?;
            f.write_str(">")
        }
        Type::Option(option) => {
            f.write_str("option<")?;
            write_type(f, &option.ty())?;
            f.write_str(">")
        }
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => f.write_str("result"),
            (Some(ok), None) => {
                f.write_str("result<")?;
                write_type(f, &ok)?;
                f.write_str(">")
            }
            (None, Some(err)) => {
                f.write_str("result<_, ")?;
                write_type(f, &err)?;
                f.write_str(">")
            }
            (Some(ok), Some(err)) => {
                f.write_str("result<")?;
                write_type(f, &ok)?;
                f.write_str(", ")?;
                write_type(f, &err)?;
                f.write_str(">")
            }
        },
        Type::Tuple(tuple) => {
            f.write_str("tuple<")?;
            for (i, ty) in tuple.types().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_type(f, &ty)?;
            }
            f.write_str(">")
        }
        Type::Record(record) => {
            f.write_str("record { ")?;
            for (i, field) in record.fields().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}: ", field.name)?;
                write_type(f, &field.ty)?;
            }
            f.write_str(" }")
        }
        Type::Variant(variant) => {
            f.write_str("variant { ")?;
            for (i, case) in variant.cases().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(case.name)?;
                if let Some(ty) = &case.ty {
                    f.write_str("(")?;
                    write_type(f, ty)?;
                    f.write_str(")")?;
                }
            }
            f.write_str(" }")
        }
        Type::Enum(en) => write!(
            f,
            "enum {{ {} }}",
            en.names().collect::<Vec<_>>().join(", ")
        ),
        Type::Flags(flags) => {
            write!(
                f,
                "flags {{ {} }}",
                flags.names().collect::<Vec<_>>().join(", ")
            )
        }
        Type::Own(_) => f.write_str("own<resource>"),
        Type::Borrow(_) => f.write_str("borrow<resource>"),
        other => write!(f, "{other:?}"),
    }
}

impl Engine {
    /// Compiles a component from its bytes (the engine's `max_module_size` applies).
    ///
    /// Fails with [`ErrorKind::InvalidModule`] for bytes that are not a valid component
    /// (a core module included: load those with [`Engine::load`]).
    pub fn load_component(&self, wasm: &[u8]) -> Result<Component> {
        self.check_size(wasm.len())?;
        let inner = wc::Component::new(self.wasmtime(), wasm).map_err(|e| {
            Error::from(ErrorKind::InvalidModule {
                reason: format!("not a valid component: {e:#}"),
            })
        })?;
        Ok(Component {
            engine: self.clone(),
            inner,
            hash: *blake3::hash(wasm).as_bytes(),
        })
    }
}

impl Component {
    /// Every function the component exports, those inside exported interfaces
    /// included (`interface#name`), sorted by name.
    pub fn functions(&self) -> Vec<ComponentFunction> {
        let engine = self.engine.wasmtime();
        let mut out = Vec::new();
        for (name, item) in self.inner.component_type().exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(func) => out.push(function(name.to_string(), &func)),
                ComponentItem::ComponentInstance(instance) => {
                    for (inner, item) in instance.exports(engine) {
                        if let ComponentItem::ComponentFunc(func) = item.ty {
                            out.push(function(format!("{name}#{inner}"), &func));
                        }
                    }
                }
                _ => {}
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The component's imports and exports as a WIT world, each sorted by name:
    /// functions with their signatures, interfaces inline (`export math: interface {
    /// ... }`). Named types
    /// are written out by their structure (the component's type keeps no names for
    /// them), so a world with records or variants is WIT-like rather than parseable
    /// WIT.
    ///
    /// ```text
    /// world component {
    ///   import log: func(msg: string);
    ///   export add: func(a: u32, b: u32) -> u32;
    ///   export math: interface {
    ///     double: func(x: s64) -> s64;
    ///   }
    /// }
    /// ```
    pub fn wit(&self) -> String {
        let engine = self.engine.wasmtime();
        let ty = self.inner.component_type();
        let mut out = String::from("world component {\n");
        let mut item = |direction: &str, name: &str, item: &ComponentItem| match item {
            ComponentItem::ComponentFunc(func) => {
                out += &format!("  {direction} {};\n", function(name.to_string(), func));
            }
            ComponentItem::ComponentInstance(instance) => {
                out += &format!("  {direction} {name}: interface {{\n");
                let mut functions: Vec<ComponentFunction> = instance
                    .exports(engine)
                    .filter_map(|(inner, item)| match item.ty {
                        ComponentItem::ComponentFunc(func) => {
                            Some(function(inner.to_string(), &func))
                        }
                        _ => None,
                    })
                    .collect();
                functions.sort_by(|a, b| a.name.cmp(&b.name));
                for f in functions {
                    out += &format!("    {f};\n");
                }
                out += "  }\n";
            }
            ComponentItem::Type(_) => {}
            other => out += &format!("  {direction} {name}: {};\n", kind_of(other)),
        };
        let mut imports: Vec<_> = ty.imports(engine).map(|(n, i)| (n, i.ty)).collect();
        let mut exports: Vec<_> = ty.exports(engine).map(|(n, e)| (n, e.ty)).collect();
        imports.sort_by(|a, b| a.0.cmp(b.0));
        exports.sort_by(|a, b| a.0.cmp(b.0));
        for (name, import) in &imports {
            item("import", name, import);
        }
        for (name, export) in &exports {
            item("export", name, export);
        }
        out += "}\n";
        out
    }

    /// The names of the component's imports (functions, interfaces), in order.
    pub fn imports(&self) -> Vec<String> {
        let engine = self.engine.wasmtime();
        self.inner
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The blake3 of the bytes the component was loaded from.
    pub fn content_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The underlying wasmtime component.
    pub fn wasmtime(&self) -> &wc::Component {
        &self.inner
    }

    /// A new instance, made under the engine's limits (its start runs with the call's
    /// fuel and timeout), given no imports: a component that imports anything is
    /// refused with [`ErrorKind::MissingImports`] naming the imports (see
    /// [`Component::instantiate_with`]).
    pub fn instantiate(&self) -> Result<ComponentInstance> {
        self.instantiate_with(&ComponentImports::new())
    }

    /// A new instance given `imports`: the host's functions and, with the feature
    /// `wasi`, WASI under a policy. Every import of the component is checked first:
    /// those `imports` do not provide fail with [`ErrorKind::MissingImports`] naming
    /// each (a world-level function or an interface by its name, a function missing
    /// from an interface the host provides in part as `interface#function`, a WASI
    /// interface without a policy by its versioned name, `wasi:cli/environment@0.2.3`);
    /// imports of the wrong type fail with an ABI violation. The start runs under the
    /// engine's limits, as for [`Component::instantiate`].
    pub fn instantiate_with(&self, imports: &ComponentImports) -> Result<ComponentInstance> {
        let linker = imports.linker(&self.inner)?;
        let pre = linker
            .instantiate_pre(&self.inner)
            .map_err(imports::wrong_import_types)?;
        let engine = &self.engine;
        crate::native_stack::check(engine.config().limits.max_wasm_stack)?;
        let limits = CallLimits::of(engine);
        let state = imports.state()?;
        let mut store = new_store(
            engine,
            state,
            Arc::new(AtomicBool::new(false)),
            &limits,
            None,
        );
        // The store reads its bounds of instances, memories and tables when the limiter
        // is installed: again, with a component's.
        store.data_mut().limits.shape_of_component();
        store.limiter(|data| &mut data.limits);
        begin_top_level_call(&mut store)?;
        store.data_mut().state.begin_call();
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| classify(store.data_mut(), e));
        store.data_mut().state.end_call();
        store.data_mut().timer.end();
        Ok(ComponentInstance {
            component: self.clone(),
            instance: instance?,
            store,
            poisoned: None,
        })
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("functions", &self.functions().len())
            .finish_non_exhaustive()
    }
}

/// What an item that is neither a function nor an interface is, for [`Component::wit`].
fn kind_of(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::Resource(_) => "resource",
        _ => "item",
    }
}

fn function(name: String, func: &wc::types::ComponentFunc) -> ComponentFunction {
    ComponentFunction {
        name,
        params: func
            .params()
            .map(|(name, ty)| (name.to_string(), ty))
            .collect(),
        result: func.results().next(),
    }
}

/// An instance of a component: its state lasts across calls, one call at a time.
pub struct ComponentInstance {
    component: Component,
    instance: wc::Instance,
    store: ComponentStore,
    poisoned: Option<String>,
}

impl fmt::Debug for ComponentInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentInstance")
            .field("name", &self.name())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl ComponentInstance {
    /// The instance's name (given by [`ComponentImports::name`]; `component` if none
    /// was).
    pub fn name(&self) -> &str {
        &self.store.data().state.name
    }

    /// The index of the export `name` (`interface#function` for one inside an exported
    /// interface).
    fn export(&self, name: &str) -> Result<ComponentExportIndex> {
        let component = &self.component.inner;
        let found = match name.split_once('#') {
            Some((interface, function)) => component
                .get_export_index(None, interface)
                .and_then(|i| component.get_export_index(Some(&i), function)),
            None => component.get_export_index(None, name),
        };
        found.ok_or_else(|| {
            ErrorKind::UnknownFunction {
                name: name.to_string(),
            }
            .into()
        })
    }

    fn func(&mut self, name: &str) -> Result<wc::Func> {
        let index = self.export(name)?;
        self.instance
            .get_func(&mut self.store, index)
            .ok_or_else(|| {
                ErrorKind::UnknownFunction {
                    name: name.to_string(),
                }
                .into()
            })
    }

    /// Calls the exported function `name` with `args` and returns its results (none or
    /// one).
    ///
    /// Arguments that do not fit the parameters (their number, or a value of another
    /// type) fail with [`ErrorKind::InvalidArguments`] naming the parameter, before any
    /// guest code runs. A trap, a panic or a limit (fuel, timeout, memory) fails with
    /// its kind and poisons the instance, as for core modules; a poisoned instance
    /// answers [`ErrorKind::Poisoned`].
    pub fn call(&mut self, name: &str, args: &[Val]) -> Result<Vec<Val>> {
        if let Some(reason) = &self.poisoned {
            return Err(ErrorKind::Poisoned {
                reason: reason.clone(),
            }
            .into());
        }
        let func = self.func(name)?;
        let ty = func.ty(&self.store);
        check_args(name, &ty, args)?;
        let mut results = vec![Val::Bool(false); ty.results().len()];
        crate::native_stack::check(self.component.engine.config().limits.max_wasm_stack)?;
        begin_top_level_call(&mut self.store)?;
        self.store.data_mut().state.begin_call();
        let called = func.call(&mut self.store, args, &mut results);
        self.store.data_mut().state.end_call();
        self.store.data_mut().timer.end();
        match called {
            Ok(()) => Ok(results),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Calls the exported function `name` with typed parameters and results, as
    /// wasmtime's `TypedFunc` does (`(u32, &str)`, `(Vec<u8>,)`, or types that
    /// `wasmtime::component::bindgen!` generated from the component's WIT), under the
    /// same limits as [`Self::call`]. Types that do not match the function's fail with
    /// [`ErrorKind::InvalidArguments`] before any guest code runs.
    ///
    /// ```
    /// use membrane_wasmtime::{Engine, EngineConfig};
    ///
    /// // Types generated from the WIT the component was built from.
    /// wasmtime::component::bindgen!({
    ///     inline: "package demo:geo; world geo { record point { x: s32, y: s32 } export flip: func(p: point) -> point; }",
    /// });
    ///
    /// let engine = Engine::new(EngineConfig::default())?;
    /// let wasm = wat::parse_str(r#"(component
    ///   (core module $m
    ///     (memory (export "mem") 1)
    ///     (func (export "flip") (param i32 i32) (result i32)
    ///       (i32.store (i32.const 0) (local.get 1))
    ///       (i32.store (i32.const 4) (local.get 0))
    ///       (i32.const 0)))
    ///   (core instance $i (instantiate $m))
    ///   (type $point (record (field "x" s32) (field "y" s32)))
    ///   (export $p "point" (type $point))
    ///   (func (export "flip") (param "p" $p) (result $p)
    ///     (canon lift (core func $i "flip") (memory $i "mem"))))"#)?;
    /// let mut instance = engine.load_component(&wasm)?.instantiate()?;
    /// let (flipped,): (Point,) = instance.call_typed("flip", (Point { x: 1, y: 2 },))?;
    /// assert_eq!((flipped.x, flipped.y), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_typed<Params, Results>(&mut self, name: &str, params: Params) -> Result<Results>
    where
        Params: wc::ComponentNamedList + wc::Lower,
        Results: wc::ComponentNamedList + wc::Lift,
    {
        if let Some(reason) = &self.poisoned {
            return Err(ErrorKind::Poisoned {
                reason: reason.clone(),
            }
            .into());
        }
        let func = self.func(name)?;
        let typed = func.typed::<Params, Results>(&self.store).map_err(|e| {
            Error::from(ErrorKind::InvalidArguments {
                function: name.to_string(),
                reason: format!("{e:#}"),
            })
        })?;
        crate::native_stack::check(self.component.engine.config().limits.max_wasm_stack)?;
        begin_top_level_call(&mut self.store)?;
        self.store.data_mut().state.begin_call();
        let called = typed.call(&mut self.store, params);
        self.store.data_mut().state.end_call();
        self.store.data_mut().timer.end();
        called.map_err(|e| self.failed(e))
    }

    /// The error of a call that failed with `e`, poisoning the instance if it must.
    fn failed(&mut self, e: wasmtime::Error) -> Error {
        let e = classify(self.store.data_mut(), e);
        if e.poisons() {
            self.poisoned = Some(e.to_string());
        }
        e
    }

    /// Calls a function written as a WAVE call, `name(arg, ...)` (for example
    /// `add(1, 2)` or `greet("ada")`), and returns its result written in WAVE (empty
    /// for a function without result).
    ///
    /// Text that is not a call, or arguments that do not parse as the parameters'
    /// types, fail with [`ErrorKind::InvalidArguments`]; then as [`Self::call`].
    pub fn call_wave(&mut self, call: &str) -> Result<String> {
        // WAVE's grammar has no `interface#function` names: the name is read here, the
        // arguments by WAVE (as those of a stand-in name).
        let (name, args) = match call.split_once('(') {
            Some((name, rest)) => (name.trim(), format!("f({rest}")),
            None => (call.trim(), "f()".to_string()),
        };
        let name = name.to_string();
        let parsed = wasm_wave::untyped::UntypedFuncCall::parse(&args).map_err(|e| {
            Error::from(ErrorKind::InvalidArguments {
                function: name.clone(),
                reason: format!("not a WAVE function call: {e}"),
            })
        })?;
        let func = self.func(&name)?;
        let ty = func.ty(&self.store);
        let types: Vec<Type> = ty.params().map(|(_, ty)| ty).collect();
        let args: Vec<Val> = parsed.to_wasm_params(types.iter()).map_err(|e| {
            Error::from(ErrorKind::InvalidArguments {
                function: name.clone(),
                reason: e.to_string(),
            })
        })?;
        let results = self.call(&name, &args)?;
        let texts = results
            .iter()
            .map(wasm_wave::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::host(format_args!("cannot write a result in WAVE: {e}")))?;
        Ok(texts.join(", "))
    }

    /// A handle that stops this instance's running call from another thread (the call
    /// fails with `TrapKind::Cancelled` and the instance is poisoned), as for core
    /// instances.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle::of_store(&self.store)
    }

    /// Whether an earlier failure poisoned the instance.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }
}

/// Checks `args` against the parameters of `ty`: their number, then each value against
/// its parameter's type (a value of another type fails naming the parameter).
fn check_args(function: &str, ty: &wc::types::ComponentFunc, args: &[Val]) -> Result<()> {
    let invalid = |reason: String| -> Error {
        ErrorKind::InvalidArguments {
            function: function.to_string(),
            reason,
        }
        .into()
    };
    if ty.params().len() != args.len() {
        return Err(invalid(format!(
            "expected {} argument(s), got {}",
            ty.params().len(),
            args.len()
        )));
    }
    for ((name, param), arg) in ty.params().zip(args) {
        if !fits(arg, &param) {
            return Err(invalid(format!(
                "parameter `{name}` has type {}, got {}",
                TypeText(&param),
                wasm_wave::to_string(arg).unwrap_or_else(|_| format!("{arg:?}"))
            )));
        }
    }
    Ok(())
}

/// Whether `val` is a value of `ty`: written in WAVE, read back as `ty`, and written
/// the same (text, not values, are compared: a NaN is not equal to itself).
fn fits(val: &Val, ty: &Type) -> bool {
    let Ok(text) = wasm_wave::to_string(val) else {
        return false;
    };
    wasm_wave::from_str::<Val>(ty, &text)
        .ok()
        .and_then(|back| wasm_wave::to_string(&back).ok())
        .is_some_and(|again| again == text)
}

/// A type in WIT's syntax, for messages.
struct TypeText<'a>(&'a Type);

impl fmt::Display for TypeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_type(f, self.0)
    }
}

#[cfg(test)]
mod tests;
