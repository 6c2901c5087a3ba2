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
mod runtime;
#[cfg(feature = "wasi")]
mod wasi;

use imports::ComponentStore;
pub use imports::{ComponentHostContext, ComponentImports, HostFnError};
pub use runtime::{RuntimeComponent, RuntimeComponents};
#[cfg(feature = "wasi")]
pub use wasi::{DirAccess, OUTPUT_TARGET, WasiPolicy};

/// A loaded component.
#[derive(Clone)]
pub struct Component {
    engine: Engine,
    inner: wc::Component,
    hash: [u8; 32],
    /// The bytes it was loaded from, which [`Component::wit`] decodes (shared by
    /// clones).
    bytes: Arc<[u8]>,
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
    /// Loads a component from its bytes (the engine's `max_module_size` applies):
    /// takes the compiled component from the engine's cache (memory, then disk when
    /// `cache_dir` is set), the cache core modules use, or compiles it into the cache.
    ///
    /// Fails with [`ErrorKind::InvalidModule`] for bytes that are not a valid component
    /// (a core module included: load those with [`Engine::load`]). Problems with the
    /// disk cache never fail a load, as for modules.
    pub fn load_component(&self, wasm: &[u8]) -> Result<Component> {
        self.check_size(wasm.len())?;
        let (key, hash) = self.component_key(wasm);
        let inner = self
            .cache()
            .get::<wc::Component>(self.wasmtime(), key, wasm, |_| Ok(()))?;
        Ok(Component {
            engine: self.clone(),
            inner,
            hash,
            bytes: Arc::from(wasm),
        })
    }

    /// Compiles a component into the cache without instantiating it, as
    /// [`Engine::precompile`] does for modules: with a `cache_dir`, makes sure the
    /// directory holds its verified artifact and returns the file's path.
    pub fn precompile_component(&self, wasm: &[u8]) -> Result<Option<std::path::PathBuf>> {
        self.check_size(wasm.len())?;
        let (key, _) = self.component_key(wasm);
        let cache = self.cache();
        let compiled = cache.get::<wc::Component>(self.wasmtime(), key, wasm, |_| Ok(()))?;
        cache.persist(&key, wasm.len(), &compiled)
    }

    /// The cache key of a component and its content hash.
    fn component_key(&self, wasm: &[u8]) -> (crate::cache::Key, [u8; 32]) {
        let hash = crate::cache::content_hash(wasm);
        (
            self.cache().key_of::<wc::Component>(&hash, wasm.len()),
            hash,
        )
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

    /// The component's WIT: its world (imports and exports) and the interfaces and
    /// types it uses, with their own names (packages, interfaces, records, variants,
    /// ...), as wit-component decodes them from the component's bytes. A component
    /// built from WIT (wit-bindgen, `cargo component`, wasm32-wasip2) gives back that
    /// WIT, up to ordering and the world's name (`root`); one written by hand gets the
    /// names its type exports.
    ///
    /// ```text
    /// package root:component;
    ///
    /// world root {
    ///   import demo:host/log;
    ///   export add: func(a: u32, b: u32) -> u32;
    /// }
    /// package demo:host {
    ///   interface log {
    ///     write: func(msg: string);
    ///   }
    /// }
    /// ```
    ///
    /// Fails with [`ErrorKind::Host`] when the component's type has something WIT cannot
    /// describe (a core module or a component among its exports, for instance).
    pub fn wit(&self) -> Result<String> {
        let cannot = |e: &dyn fmt::Display| {
            Error::host(format_args!("cannot describe the component in WIT: {e}"))
        };
        let decoded =
            wit_component::decode(&self.bytes).map_err(|e| cannot(&format_args!("{e:#}")))?;
        let resolve = decoded.resolve();
        let main = decoded.package();
        let nested: Vec<_> = resolve
            .packages
            .iter()
            .map(|(id, _)| id)
            .filter(|id| *id != main)
            .collect();
        let mut printer = wit_component::WitPrinter::default();
        printer
            .print(resolve, main, &nested)
            .map_err(|e| cannot(&format_args!("{e:#}")))?;
        Ok(printer.output.to_string())
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
        let pre = self.pre(imports)?;
        self.instantiate_pre(&pre, imports, CallLimits::of(&self.engine))
    }

    /// The component linked with `imports`, every import checked (see
    /// [`Component::instantiate_with`]), ready to make instances.
    fn pre(&self, imports: &ComponentImports) -> Result<wc::InstancePre<imports::Data>> {
        imports
            .linker(&self.inner)?
            .instantiate_pre(&self.inner)
            .map_err(imports::wrong_import_types)
    }

    /// A new instance of `pre` (this component linked with `imports`), its
    /// instantiation and calls under `limits`.
    fn instantiate_pre(
        &self,
        pre: &wc::InstancePre<imports::Data>,
        imports: &ComponentImports,
        limits: CallLimits,
    ) -> Result<ComponentInstance> {
        let engine = &self.engine;
        crate::native_stack::check(engine.config().limits.max_wasm_stack)?;
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

    /// This component for a [`Runtime`](membrane_runtime::Runtime), its instances given
    /// `imports` (`docs/components.md`, "In a runtime"): added beside core modules with
    /// the same specs (instance policies, limit overrides), called by name with
    /// [`RuntimeComponents::call_values`] or [`Runtime::call_wave`](membrane_runtime::Runtime::call_wave),
    /// counted as any module's calls.
    pub fn for_runtime(&self, imports: ComponentImports) -> RuntimeComponent {
        RuntimeComponent {
            component: self.clone(),
            imports: Arc::new(imports),
        }
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("functions", &self.functions().len())
            .finish_non_exhaustive()
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
        self.call_by(None, name, args)
    }

    /// [`ComponentInstance::call`] that stops by `deadline` at the latest (the chain's
    /// deadline in a runtime) if its own timeout does not stop it first.
    fn call_by(
        &mut self,
        deadline: Option<std::time::Instant>,
        name: &str,
        args: &[Val],
    ) -> Result<Vec<Val>> {
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
        if let Some(deadline) = deadline {
            self.store.data_mut().timer.cap(deadline);
        }
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
        self.call_wave_by(None, call)
    }

    /// [`ComponentInstance::call_wave`] ending by `deadline` at the latest.
    fn call_wave_by(&mut self, deadline: Option<std::time::Instant>, call: &str) -> Result<String> {
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
        let results = self.call_by(deadline, &name, &args)?;
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
    if ty.results().any(|result| has_resource(&result)) {
        return Err(invalid(
            "it returns a resource, and resources are not supported".to_string(),
        ));
    }
    if ty.params().len() != args.len() {
        return Err(invalid(format!(
            "expected {} argument(s), got {}",
            ty.params().len(),
            args.len()
        )));
    }
    for ((name, param), arg) in ty.params().zip(args) {
        if let Err(why) = fits(arg, &param) {
            return Err(invalid(format!(
                "parameter `{name}` has type {}: {why}",
                TypeText(&param)
            )));
        }
    }
    Ok(())
}

/// Whether `val` is a value of `ty`, checked structurally (as wasmtime checks it when
/// lowering, but before any guest code runs, so that a host's mistake is an error
/// naming the parameter rather than a failed call); `Err` says where it differs.
/// Flags may be listed in any order; resources are refused (not supported).
fn fits(val: &Val, ty: &Type) -> std::result::Result<(), String> {
    let payload = |val: &Option<Box<Val>>, ty: Option<Type>, what: &str| match (val, ty) {
        (None, None) => Ok(()),
        (Some(val), Some(ty)) => fits(val, &ty).map_err(|why| format!("{what}: {why}")),
        (Some(_), None) => Err(format!("{what} takes no value")),
        (None, Some(ty)) => Err(format!("{what} needs a value of type {}", TypeText(&ty))),
    };
    match (val, ty) {
        (Val::Bool(_), Type::Bool)
        | (Val::S8(_), Type::S8)
        | (Val::U8(_), Type::U8)
        | (Val::S16(_), Type::S16)
        | (Val::U16(_), Type::U16)
        | (Val::S32(_), Type::S32)
        | (Val::U32(_), Type::U32)
        | (Val::S64(_), Type::S64)
        | (Val::U64(_), Type::U64)
        | (Val::Float32(_), Type::Float32)
        | (Val::Float64(_), Type::Float64)
        | (Val::Char(_), Type::Char)
        | (Val::String(_), Type::String) => Ok(()),
        (Val::List(vals), Type::List(list)) => {
            let element = list.ty();
            for (i, val) in vals.iter().enumerate() {
                fits(val, &element).map_err(|why| format!("element {i}: {why}"))?;
            }
            Ok(())
        }
        (Val::Tuple(vals), Type::Tuple(tuple)) => {
            if vals.len() != tuple.types().len() {
                return Err(format!(
                    "a tuple of {} values, got {}",
                    tuple.types().len(),
                    vals.len()
                ));
            }
            for (i, (val, ty)) in vals.iter().zip(tuple.types()).enumerate() {
                fits(val, &ty).map_err(|why| format!("element {i}: {why}"))?;
            }
            Ok(())
        }
        (Val::Record(fields), Type::Record(record)) => {
            if fields.len() != record.fields().len() {
                return Err(format!(
                    "a record of {} fields, got {}",
                    record.fields().len(),
                    fields.len()
                ));
            }
            for ((name, val), field) in fields.iter().zip(record.fields()) {
                if name != field.name {
                    return Err(format!("expected field `{}`, got `{name}`", field.name));
                }
                fits(val, &field.ty).map_err(|why| format!("field `{name}`: {why}"))?;
            }
            Ok(())
        }
        (Val::Variant(name, val), Type::Variant(variant)) => {
            match variant.cases().find(|case| case.name == name) {
                Some(case) => payload(val, case.ty, &format!("case `{name}`")),
                None => Err(format!("no case `{name}`")),
            }
        }
        (Val::Enum(name), Type::Enum(en)) => match en.names().any(|n| n == name) {
            true => Ok(()),
            false => Err(format!("no case `{name}`")),
        },
        (Val::Option(val), Type::Option(option)) => match val {
            None => Ok(()),
            Some(val) => fits(val, &option.ty()).map_err(|why| format!("some: {why}")),
        },
        (Val::Result(Ok(val)), Type::Result(result)) => payload(val, result.ok(), "ok"),
        (Val::Result(Err(val)), Type::Result(result)) => payload(val, result.err(), "err"),
        (Val::Flags(names), Type::Flags(flags)) => {
            match names.iter().find(|name| !flags.names().any(|n| n == *name)) {
                Some(name) => Err(format!("no flag `{name}`")),
                None => Ok(()),
            }
        }
        (_, Type::Own(_) | Type::Borrow(_)) | (Val::Resource(_), _) => {
            Err("resources are not supported".to_string())
        }
        (val, _) => Err(format!(
            "got {} {}",
            kind_of(val),
            wasm_wave::to_string(val).unwrap_or_else(|_| format!("{val:?}"))
        )),
    }
}

/// The kind of a value, for messages (`s32`, `string`, `record`, ...).
fn kind_of(val: &Val) -> &'static str {
    match val {
        Val::Bool(_) => "bool",
        Val::S8(_) => "s8",
        Val::U8(_) => "u8",
        Val::S16(_) => "s16",
        Val::U16(_) => "u16",
        Val::S32(_) => "s32",
        Val::U32(_) => "u32",
        Val::S64(_) => "s64",
        Val::U64(_) => "u64",
        Val::Float32(_) => "f32",
        Val::Float64(_) => "f64",
        Val::Char(_) => "char",
        Val::String(_) => "string",
        Val::List(_) | Val::FixedLengthList(_) => "list",
        Val::Map(_) => "map",
        Val::Record(_) => "record",
        Val::Tuple(_) => "tuple",
        Val::Variant(..) => "variant",
        Val::Enum(_) => "enum",
        Val::Option(_) => "option",
        Val::Result(_) => "result",
        Val::Flags(_) => "flags",
        Val::Resource(_) => "resource",
        Val::Future(_) => "future",
        Val::Stream(_) => "stream",
        Val::ErrorContext(_) => "error-context",
    }
}

/// Whether a value of `ty` may hold a resource (own or borrow).
fn has_resource(ty: &Type) -> bool {
    match ty {
        Type::Own(_) | Type::Borrow(_) => true,
        Type::List(list) => has_resource(&list.ty()),
        Type::Option(option) => has_resource(&option.ty()),
        Type::Result(result) => {
            result.ok().is_some_and(|t| has_resource(&t))
                || result.err().is_some_and(|t| has_resource(&t))
        }
        Type::Tuple(tuple) => tuple.types().any(|t| has_resource(&t)),
        Type::Record(record) => record.fields().any(|f| has_resource(&f.ty)),
        Type::Variant(variant) => variant
            .cases()
            .any(|c| c.ty.as_ref().is_some_and(has_resource)),
        _ => false,
    }
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
