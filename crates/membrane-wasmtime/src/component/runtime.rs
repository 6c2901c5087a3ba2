//! Components in a [`Runtime`]: [`RuntimeComponent`] is a runtime module whose
//! instances are component instances, called by name with values
//! ([`RuntimeComponents::call_values`]) or WAVE ([`Runtime::call_wave`]) under the same
//! instance policies, limit overrides and counters as core modules.
//!
//! A component's functions take typed values, not envelope payloads: a call with a
//! payload (from the host's `call_raw`, or routed from a core module) is refused with
//! [`ErrorKind::InvalidArguments`]. Components have no lifecycle hooks, no message
//! handler, and import no membrane services (their imports are what their
//! [`ComponentImports`] give).

use std::any::Any;
use std::sync::Arc;

use membrane_runtime::executor::{
    Canceller, ContentHash, GuestInstance, Hook, Instantiator, LimitOverrides, RuntimeModule,
};
use membrane_runtime::{CallContext, ErrorKind, Result, Runtime, RuntimeLink};
use wasmtime::component as wc;

use super::imports::Data;
use super::{Component, ComponentImports, ComponentInstance, Val};
use crate::instance::CallLimits;

/// A component for a [`Runtime`], made by [`Component::for_runtime`].
///
/// ```
/// use membrane_runtime::{ModuleSpec, Runtime, RuntimeConfig};
/// use membrane_wasmtime::component::{ComponentImports, RuntimeComponents, Val};
/// use membrane_wasmtime::{Engine, EngineConfig};
///
/// let engine = Engine::new(EngineConfig::default())?;
/// let wasm = wat::parse_str(r#"(component
///   (core module $m
///     (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
///   (core instance $i (instantiate $m))
///   (func (export "add") (param "a" u32) (param "b" u32) (result u32)
///     (canon lift (core func $i "add"))))"#)?;
/// let component = engine.load_component(&wasm)?;
///
/// let runtime = Runtime::new(RuntimeConfig::default());
/// runtime.add("calc", component.for_runtime(ComponentImports::new()), ModuleSpec::default())?;
/// assert_eq!(runtime.call_wave("calc", "add(1, 2)")?, "3");
/// assert_eq!(runtime.call_values("calc", "add", &[Val::U32(2), Val::U32(3)])?, [Val::U32(5)]);
/// assert_eq!(runtime.module("calc").unwrap().counters.ok, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RuntimeComponent {
    pub(super) component: Component,
    pub(super) imports: Arc<ComponentImports>,
}

impl RuntimeModule for RuntimeComponent {
    fn function_names(&self) -> Vec<String> {
        self.component
            .functions()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    fn content_hash(&self) -> ContentHash {
        ContentHash(self.component.content_hash())
    }

    /// A component's imports are the component model's (interfaces and functions),
    /// satisfied by its [`ComponentImports`] or refused when it is added; none of them
    /// is a membrane service.
    fn imports(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn handles_messages(&self) -> bool {
        false
    }

    fn limited(
        &self,
        overrides: &LimitOverrides,
        _link: &RuntimeLink,
    ) -> Result<Box<dyn Instantiator>> {
        Ok(Box::new(Limited {
            limits: CallLimits::new(&self.component.engine, overrides)?,
            pre: self.component.pre(&self.imports)?,
            component: self.clone(),
        }))
    }
}

/// Makes instances of a runtime component under its checked limits, linked once.
struct Limited {
    component: RuntimeComponent,
    pre: wc::InstancePre<Data>,
    limits: CallLimits,
}

impl Instantiator for Limited {
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
        let RuntimeComponent { component, imports } = &self.component;
        Ok(Box::new(component.instantiate_pre(
            &self.pre,
            imports,
            self.limits,
        )?))
    }
}

/// The arguments and results of a call with values, as they cross the runtime (which
/// knows no wasmtime type) to the instance.
struct ValuesCall {
    args: Vec<Val>,
    results: Vec<Val>,
}

impl GuestInstance for ComponentInstance {
    fn call_envelope(
        &mut self,
        _ctx: CallContext,
        name: &str,
        _input: &[u8],
        _read: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        Err(ErrorKind::InvalidArguments {
            function: name.to_string(),
            reason: "a component is called with values or WAVE (call_values, call_wave), not with an envelope payload".into(),
        }
        .into())
    }

    fn call_wave(&mut self, ctx: CallContext, call: &str) -> Result<String> {
        self.call_wave_by(ctx.deadline, call)
    }

    fn call_values(&mut self, ctx: CallContext, function: &str, call: &mut dyn Any) -> Result<()> {
        let Some(call) = call.downcast_mut::<ValuesCall>() else {
            return Err(membrane_runtime::Error::host(
                "a call with values made by another executor reached a component of the wasmtime executor",
            ));
        };
        call.results = self.call_by(ctx.deadline, function, &call.args)?;
        Ok(())
    }

    /// Components have no lifecycle hooks.
    fn run_hook(&mut self, _hook: Hook) -> Result<()> {
        Ok(())
    }

    fn canceller(&self) -> Box<dyn Canceller> {
        Box::new(self.cancel_handle())
    }

    fn is_poisoned(&self) -> bool {
        ComponentInstance::is_poisoned(self)
    }
}

/// Calls with a component's values on a [`Runtime`] (WAVE text needs no extension:
/// [`Runtime::call_wave`]).
pub trait RuntimeComponents {
    /// Calls `function` of the component `module` with `args` and returns its results
    /// (none or one), as [`ComponentInstance::call`] does, on an instance the runtime
    /// chooses under the module's policy, counted in its stats. A core module refuses
    /// with [`ErrorKind::InvalidArguments`].
    fn call_values(&self, module: &str, function: &str, args: &[Val]) -> Result<Vec<Val>>;
}

impl RuntimeComponents for Runtime {
    fn call_values(&self, module: &str, function: &str, args: &[Val]) -> Result<Vec<Val>> {
        // `Any` needs `'static`: the arguments cross as owned values.
        let mut call = ValuesCall {
            args: args.to_vec(),
            results: Vec::new(),
        };
        self.call_executor_values(module, function, &mut call)?;
        Ok(call.results)
    }
}
