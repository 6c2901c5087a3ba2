//! What a component instance is given: the host's functions (typed or with [`Val`]s, at
//! world level or inside an interface), WASI under a [`WasiPolicy`](super::WasiPolicy)
//! (feature `wasi`), and the instance's name; the check that names every import left
//! unsatisfied; the state each component store carries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{self as wc, ComponentNamedList, Lift, Lower, Val};

use membrane_runtime::{AbiViolation, Error, ErrorKind, Result};

use crate::store::StoreData;

/// The error a host function of a component returns: any error, as text in the
/// membrane error the call then fails with.
pub type HostFnError = Box<dyn std::error::Error + Send + Sync>;

/// What a component's store carries beside membrane's limits: the instance's name and,
/// with WASI, its context and resources.
pub(crate) struct ComponentState {
    pub(crate) name: Arc<str>,
    #[cfg(feature = "wasi")]
    pub(crate) wasi: Option<super::wasi::WasiState>,
}

impl ComponentState {
    /// Starts a top-level call (or the instantiation): the output budget of the call
    /// begins anew.
    pub(crate) fn begin_call(&mut self) {
        #[cfg(feature = "wasi")]
        if let Some(wasi) = &self.wasi {
            wasi.output.begin_call();
        }
    }

    /// Ends a top-level call: output left without a final newline is emitted as a line.
    pub(crate) fn end_call(&mut self) {
        #[cfg(feature = "wasi")]
        if let Some(wasi) = &self.wasi {
            wasi.output.end_call();
        }
    }
}

/// The store of a component instance.
pub(crate) type ComponentStore = wasmtime::Store<StoreData<ComponentState>>;

pub(crate) type Data = StoreData<ComponentState>;

/// What a host function of a component sees of the call it serves.
pub struct ComponentHostContext<'a> {
    instance: &'a str,
    function: &'a str,
}

impl ComponentHostContext<'_> {
    /// The name of the instance that called (see [`ComponentImports::name`]).
    pub fn instance_name(&self) -> &str {
        self.instance
    }

    /// The name under which the function was imported (`interface#function` or
    /// `function`).
    pub fn function(&self) -> &str {
        self.function
    }
}

/// Links one host function into the linker instance of its interface (or the root).
type LinkFn =
    dyn Fn(&mut wc::LinkerInstance<'_, Data>, &str, Arc<str>) -> wasmtime::Result<()> + Send + Sync;

/// The imports a component instance is given: the host's functions, WASI (feature
/// `wasi`) under a [`WasiPolicy`](super::WasiPolicy) that grants nothing by default,
/// and the instance's name. Anything the component imports that these do not provide
/// makes [`Component::instantiate_with`](super::Component::instantiate_with) fail with
/// [`ErrorKind::MissingImports`] naming it.
///
/// A function is named `function` for one the component imports at world level
/// (`import log: func(msg: string);`), `interface#function` for one inside an imported
/// interface (`import demo:host/log;` with `write: func(msg: string);` is
/// `demo:host/log#write`; a versioned interface keeps its version,
/// `demo:host/log@1.0.0#write`).
///
/// A host function runs on the calling thread, inside the call. If it returns an
/// error or panics, the call fails with [`ErrorKind::Host`] naming the function and
/// the instance is poisoned (the guest was stopped in the middle of its code), as a
/// panicking host function of a core module does; the host process is never brought
/// down. An error meant for the guest belongs in the function's WIT type
/// (`result<T, E>`).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use membrane_wasmtime::component::ComponentImports;
/// use membrane_wasmtime::{Engine, EngineConfig};
///
/// let engine = Engine::new(EngineConfig::default())?;
/// // Imports `demo:host/log` (with `write: func(msg: string)`) and exports `run`,
/// // which writes "hi" through it.
/// let wasm = wat::parse_str(r#"(component
///   (import "demo:host/log" (instance $log
///     (export "write" (func (param "msg" string)))))
///   (core module $mem (memory (export "mem") 1) (data (i32.const 16) "hi"))
///   (core instance $mem (instantiate $mem))
///   (core func $write (canon lower (func $log "write") (memory $mem "mem")))
///   (core module $m
///     (import "log" "write" (func $write (param i32 i32)))
///     (func (export "run") (call $write (i32.const 16) (i32.const 2))))
///   (core instance $i (instantiate $m
///     (with "log" (instance (export "write" (func $write))))))
///   (func (export "run") (canon lift (core func $i "run"))))"#)?;
/// let component = engine.load_component(&wasm)?;
///
/// let lines = Arc::new(Mutex::new(Vec::new()));
/// let seen = lines.clone();
/// let mut imports = ComponentImports::new();
/// imports.name("demo").func("demo:host/log#write", move |ctx, (msg,): (String,)| {
///     seen.lock().unwrap().push(format!("{}: {msg}", ctx.instance_name()));
///     Ok(())
/// });
/// let mut instance = component.instantiate_with(&imports)?;
/// instance.call("run", &[])?;
/// assert_eq!(*lines.lock().unwrap(), ["demo: hi"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ComponentImports {
    name: Arc<str>,
    /// Host functions by interface (`""`: the root, world-level functions), then name.
    functions: BTreeMap<String, BTreeMap<String, Arc<LinkFn>>>,
    #[cfg(feature = "wasi")]
    wasi: Option<super::wasi::WasiPolicy>,
}

impl Default for ComponentImports {
    fn default() -> Self {
        ComponentImports {
            name: Arc::from(DEFAULT_NAME),
            functions: BTreeMap::new(),
            #[cfg(feature = "wasi")]
            wasi: None,
        }
    }
}

/// The name of an instance not given one.
pub(crate) const DEFAULT_NAME: &str = "component";

impl fmt::Debug for ComponentImports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ComponentImports");
        d.field("name", &self.name)
            .field("functions", &self.names().collect::<Vec<_>>());
        #[cfg(feature = "wasi")]
        d.field("wasi", &self.wasi);
        d.finish()
    }
}

impl ComponentImports {
    /// No host functions, no WASI, the name `component`.
    pub fn new() -> ComponentImports {
        ComponentImports::default()
    }

    /// Names the instances made with these imports: the `component` field of their
    /// captured output (`tracing`, target `membrane::component`) and
    /// [`ComponentInstance::name`](super::ComponentInstance::name).
    pub fn name(&mut self, name: &str) -> &mut Self {
        self.name = Arc::from(name);
        self
    }

    /// The name instances made with these imports get.
    pub fn instance_name(&self) -> &str {
        &self.name
    }

    /// Provides the function `name` (`function` or `interface#function`) with typed
    /// parameters and results, as wasmtime's `LinkerInstance::func_wrap`: `Params` and
    /// `Results` are tuples of Rust types matching the function's WIT type
    /// (`(String,)`, `(u32, u32)`, `()`, or types `wasmtime::component::bindgen!`
    /// generated). A type that does not match the component's import fails the
    /// instantiation. Replaces any earlier function of the same name.
    pub fn func<Params, Results, F>(&mut self, name: &str, f: F) -> &mut Self
    where
        Params: ComponentNamedList + Lift + 'static,
        Results: ComponentNamedList + Lower + 'static,
        F: Fn(&mut ComponentHostContext<'_>, Params) -> std::result::Result<Results, HostFnError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        let link = move |linker: &mut wc::LinkerInstance<'_, Data>,
                         item: &str,
                         full: Arc<str>|
              -> wasmtime::Result<()> {
            let f = f.clone();
            linker.func_wrap(item, move |store: StoreContextMut<'_, Data>, params| {
                serve(store, &full, |ctx| f(ctx, params))
            })
        };
        self.insert(name, Arc::new(link))
    }

    /// Provides the function `name` (`function` or `interface#function`) dynamically,
    /// as wasmtime's `LinkerInstance::func_new`: `f` gets the arguments as [`Val`]s and
    /// fills in the results (as many as the function's type has, each set to a value
    /// of its type: a value of another type fails the call).
    pub fn func_new<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(
                &mut ComponentHostContext<'_>,
                &[Val],
                &mut [Val],
            ) -> std::result::Result<(), HostFnError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        let link = move |linker: &mut wc::LinkerInstance<'_, Data>,
                         item: &str,
                         full: Arc<str>|
              -> wasmtime::Result<()> {
            let f = f.clone();
            linker.func_new(
                item,
                move |store: StoreContextMut<'_, Data>, _ty, args: &[Val], results: &mut [Val]| {
                    serve(store, &full, |ctx| f(ctx, args, results))
                },
            )
        };
        self.insert(name, Arc::new(link))
    }

    fn insert(&mut self, name: &str, link: Arc<LinkFn>) -> &mut Self {
        let (interface, function) = match name.rsplit_once('#') {
            Some((interface, function)) => (interface, function),
            None => ("", name),
        };
        self.functions
            .entry(interface.to_string())
            .or_default()
            .insert(function.to_string(), link);
        self
    }

    /// The names of the host functions provided, sorted.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.functions.iter().flat_map(|(interface, functions)| {
            functions.keys().map(move |f| {
                if interface.is_empty() {
                    f.clone()
                } else {
                    format!("{interface}#{f}")
                }
            })
        })
    }

    /// Grants WASI preview 2 under `policy` (feature `wasi`): without it, a component
    /// importing any WASI interface is refused with [`ErrorKind::MissingImports`]
    /// naming them.
    #[cfg(feature = "wasi")]
    pub fn wasi(&mut self, policy: super::wasi::WasiPolicy) -> &mut Self {
        self.wasi = Some(policy);
        self
    }

    /// The state of a new instance's store: its name and, with WASI, its context.
    pub(crate) fn state(&self) -> Result<ComponentState> {
        Ok(ComponentState {
            name: self.name.clone(),
            #[cfg(feature = "wasi")]
            wasi: match &self.wasi {
                Some(policy) => Some(policy.state(&self.name)?),
                None => None,
            },
        })
    }

    /// A linker with these imports, for `component` (every import checked first: the
    /// ones left unsatisfied are named in one [`ErrorKind::MissingImports`]).
    pub(crate) fn linker(&self, component: &wc::Component) -> Result<wc::Linker<Data>> {
        let missing = self.missing(component);
        if !missing.is_empty() {
            return Err(ErrorKind::MissingImports { imports: missing }.into());
        }
        let cannot = |e: wasmtime::Error| Error::host(format_args!("cannot link: {e:#}"));
        let mut linker = wc::Linker::new(component.engine());
        #[cfg(feature = "wasi")]
        if self.wasi.is_some() {
            super::wasi::link(&mut linker).map_err(cannot)?;
        }
        for (interface, functions) in &self.functions {
            let mut instance = if interface.is_empty() {
                linker.root()
            } else {
                linker.instance(interface).map_err(cannot)?
            };
            for (function, link) in functions {
                let full: Arc<str> = if interface.is_empty() {
                    Arc::from(function.as_str())
                } else {
                    Arc::from(format!("{interface}#{function}"))
                };
                link(&mut instance, function, full).map_err(cannot)?;
            }
        }
        Ok(linker)
    }

    /// The imports of `component` these do not provide: a world-level function or a
    /// whole interface by its name, a function missing from an interface the host
    /// provides in part as `interface#function`, a WASI interface (without a policy, or
    /// one WASI support here does not link: sockets) by its name.
    fn missing(&self, component: &wc::Component) -> Vec<String> {
        let engine = component.engine();
        let mut missing = Vec::new();
        for (name, import) in component.component_type().imports(engine) {
            match import.ty {
                ComponentItem::ComponentFunc(_) => {
                    if !self.provides("", name) {
                        missing.push(name.to_string());
                    }
                }
                ComponentItem::ComponentInstance(instance) if self.has_interface(name) => {
                    for (function, item) in instance.exports(engine) {
                        if matches!(item.ty, ComponentItem::ComponentFunc(_))
                            && !self.provides(name, function)
                        {
                            missing.push(format!("{name}#{function}"));
                        }
                    }
                }
                ComponentItem::ComponentInstance(_) if self.wasi_provides(name) => {}
                ComponentItem::Type(_) => {}
                _ => missing.push(name.to_string()),
            }
        }
        missing
    }

    fn has_interface(&self, interface: &str) -> bool {
        !interface.is_empty() && self.functions.contains_key(interface)
    }

    fn provides(&self, interface: &str, function: &str) -> bool {
        self.functions
            .get(interface)
            .is_some_and(|f| f.contains_key(function))
    }

    #[cfg(feature = "wasi")]
    fn wasi_provides(&self, interface: &str) -> bool {
        self.wasi.is_some() && super::wasi::links(interface)
    }

    #[cfg(not(feature = "wasi"))]
    fn wasi_provides(&self, _interface: &str) -> bool {
        false
    }
}

/// Runs the host function `function` (`run`, given its context) for the instance of
/// `store`: its results, or a failure (an error, a panic caught here) recorded as the
/// store's fault (the call fails with it, and the instance is poisoned).
fn serve<R>(
    mut store: StoreContextMut<'_, Data>,
    function: &str,
    run: impl FnOnce(&mut ComponentHostContext<'_>) -> std::result::Result<R, HostFnError>,
) -> wasmtime::Result<R> {
    let outcome = {
        let mut ctx = ComponentHostContext {
            instance: &store.data().state.name,
            function,
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut ctx)))
    };
    let data = store.data_mut();
    let e = match outcome {
        Ok(Ok(results)) => return Ok(results),
        Ok(Err(e)) => Error::host(format_args!("host function `{function}` failed: {e}")),
        Err(panic) => crate::host_fn::host_fn_panicked(function, &*panic),
    };
    data.set_fault(e);
    Err(wasmtime::Error::msg(
        "membrane: the host function failed (see the recorded fault)",
    ))
}

/// The error for imports whose types do not match what the host provides.
pub(crate) fn wrong_import_types(e: wasmtime::Error) -> Error {
    Error::abi(AbiViolation::WrongImportType {
        import: "<component imports>".into(),
        expected: "the types of the host's functions",
        found: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests;
