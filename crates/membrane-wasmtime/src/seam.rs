//! `membrane-runtime`'s executor seam ([`membrane_runtime::executor`]) implemented by
//! this crate's types: the engine loads, a module links, an `InstancePre` instantiates
//! (and is a [`RuntimeModule`], alone or with a state factory: [`WithState`]), an
//! instance calls, a cancel handle cancels. At the top of the crate: it only delegates
//! to the layers below.

use std::sync::Arc;

use membrane_runtime::executor::{
    Canceller, ContentHash, Executor, GuestInstance, Hook, Instantiator, LimitOverrides,
    LoadedModule, RuntimeModule,
};
use membrane_runtime::protocol::{read_in_place, read_to_vec};
use membrane_runtime::{CallContext, Result, RuntimeLink};

use crate::engine::Engine;
use crate::host_fn::HostFunctions;
use crate::instance::{CallLimits, Instance, InstancePre};
use crate::module::Module;
use crate::store::CancelHandle;

impl Executor for Engine {
    fn load(&self, wasm: &[u8]) -> Result<Box<dyn LoadedModule>> {
        Ok(Box::new(Engine::load(self, wasm)?))
    }
}

impl LoadedModule for Module {
    fn function_names(&self) -> Vec<String> {
        self.functions().map(str::to_string).collect()
    }

    fn link(&self) -> Result<Box<dyn Instantiator>> {
        Ok(Box::new(self.prepare(&HostFunctions::<()>::new())?))
    }

    fn link_for_runtime(&self) -> Result<Box<dyn RuntimeModule>> {
        Ok(Box::new(self.prepare(&HostFunctions::<()>::new())?))
    }
}

/// Instances start with the default host state.
impl<T: Default + Send + Sync + 'static> Instantiator for InstancePre<T> {
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
        Ok(Box::new(InstancePre::instantiate(self, T::default())?))
    }
}

/// A runtime module whose instances start with the default host state.
impl<T: Default + Send + Sync + 'static> RuntimeModule for InstancePre<T> {
    fn function_names(&self) -> Vec<String> {
        self.module().function_names()
    }

    fn content_hash(&self) -> ContentHash {
        ContentHash(self.module().content_hash())
    }

    fn imports(&self) -> Vec<(String, String)> {
        import_names(self.module())
    }

    fn handles_messages(&self) -> bool {
        self.module().handles_messages()
    }

    fn limited(
        &self,
        overrides: &LimitOverrides,
        link: &RuntimeLink,
    ) -> Result<Box<dyn Instantiator>> {
        self.clone().with_state(T::default).limited(overrides, link)
    }
}

/// Every import of `module` as owned `(module, name)` pairs.
fn import_names(module: &Module) -> Vec<(String, String)> {
    module
        .imports()
        .map(|(from, name)| (from.to_string(), name.to_string()))
        .collect()
}

/// A module for a [`Runtime`](membrane_runtime::Runtime) whose instances each start with
/// the host state a factory makes: for host functions with state (`T` need not be
/// `Default`). Made by [`InstancePre::with_state`].
pub struct WithState<T: 'static> {
    pre: InstancePre<T>,
    state: Arc<dyn Fn() -> T + Send + Sync>,
}

impl<T: Send + 'static> InstancePre<T> {
    /// This module for a [`Runtime`](membrane_runtime::Runtime), each instance starting
    /// with the host state `make()` returns (an `InstancePre<T>` with `T: Default` is a
    /// runtime module by itself, starting with `T::default()`).
    pub fn with_state(self, make: impl Fn() -> T + Send + Sync + 'static) -> WithState<T> {
        WithState {
            pre: self,
            state: Arc::new(make),
        }
    }
}

impl<T: Send + Sync + 'static> RuntimeModule for WithState<T> {
    fn function_names(&self) -> Vec<String> {
        self.pre.module().function_names()
    }

    fn content_hash(&self) -> ContentHash {
        ContentHash(self.pre.module().content_hash())
    }

    fn imports(&self) -> Vec<(String, String)> {
        import_names(self.pre.module())
    }

    fn handles_messages(&self) -> bool {
        self.pre.module().handles_messages()
    }

    fn limited(
        &self,
        overrides: &LimitOverrides,
        link: &RuntimeLink,
    ) -> Result<Box<dyn Instantiator>> {
        Ok(Box::new(Limited {
            limits: CallLimits::new(self.pre.module().engine(), overrides)?,
            pre: self.pre.clone(),
            state: self.state.clone(),
            link: link.clone(),
        }))
    }
}

impl<T: 'static> std::fmt::Debug for WithState<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithState")
            .field("pre", &self.pre)
            .finish_non_exhaustive()
    }
}

/// Makes instances of a runtime module under its checked per-call limits, linked to
/// the runtime.
struct Limited<T: 'static> {
    pre: InstancePre<T>,
    limits: CallLimits,
    state: Arc<dyn Fn() -> T + Send + Sync>,
    link: RuntimeLink,
}

impl<T: Send + Sync + 'static> Instantiator for Limited<T> {
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
        Ok(Box::new(self.pre.instantiate_limited(
            (self.state)(),
            self.limits,
            Some(self.link.clone()),
        )?))
    }
}

impl<T: Send + 'static> GuestInstance for Instance<T> {
    fn call_envelope(
        &mut self,
        ctx: CallContext,
        name: &str,
        input: &[u8],
        read: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        self.call_in_context(ctx, name, input, |codec, bytes| {
            read_in_place(codec, bytes, |output| read(output))
        })
    }

    fn call_to_vec(&mut self, ctx: CallContext, name: &str, input: &[u8]) -> Result<Vec<u8>> {
        self.call_in_context(ctx, name, input, read_to_vec)
    }

    fn run_hook(&mut self, hook: Hook) -> Result<()> {
        Instance::run_hook(self, hook)
    }

    fn canceller(&self) -> Box<dyn Canceller> {
        Box::new(self.cancel_handle())
    }

    fn is_poisoned(&self) -> bool {
        Instance::is_poisoned(self)
    }
}

impl Canceller for CancelHandle {
    fn cancel(&self) {
        CancelHandle::cancel(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use membrane_runtime::ErrorKind;

    /// A membrane module whose `echo` returns its input envelope as its output, and
    /// whose `boom` traps.
    const ECHO: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i32 i32) (result i32) i32.const 1024)
  (func (export "echo") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32))
            (i64.extend_i32_u (local.get 1))))
  (func (export "boom") (param i32 i32) (result i64) unreachable)
  (func (export "loop") (param i32 i32) (result i64) (loop br 0) unreachable))"#;

    /// Load, link, instantiate, call and cancel through the seam alone.
    #[test]
    fn the_seam_loads_instantiates_and_calls() {
        let engine: Box<dyn Executor> = Box::new(Engine::new(EngineConfig::default()).unwrap());
        let module = engine.load(&wat::parse_str(ECHO).unwrap()).unwrap();
        assert_eq!(module.function_names(), ["echo", "boom", "loop"]);
        let mut instance = module.link().unwrap().instantiate().unwrap();
        // No hooks: nothing to run.
        instance.run_hook(Hook::Start).unwrap();
        let mut seen = Vec::new();
        instance
            .call_envelope(CallContext::host(1), "echo", b"hello", &mut |out| {
                seen.extend_from_slice(out)
            })
            .unwrap();
        assert_eq!(seen, b"hello");
        // Nothing runs: a cancel is forgotten by the next call.
        instance.canceller().cancel();
        let e = instance
            .call_envelope(CallContext::host(2), "boom", b"", &mut |_| ())
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Trap(_)), "{e}");
        assert!(instance.is_poisoned());
    }

    /// A runtime of modules loaded through the seam alone (`dyn Executor`).
    #[test]
    fn a_runtime_over_the_seam_alone() {
        let engine: Box<dyn Executor> = Box::new(Engine::new(EngineConfig::default()).unwrap());
        let module = engine.load(&wat::parse_str(ECHO).unwrap()).unwrap();
        let runtime = membrane_runtime::Runtime::new(membrane_runtime::RuntimeConfig::default());
        runtime
            .add(
                "echo",
                module.link_for_runtime().unwrap(),
                membrane_runtime::ModuleSpec::pooled(2),
            )
            .unwrap();
        assert_eq!(runtime.call_raw("echo", "echo", b"hi").unwrap(), b"hi");
        let e = runtime.call_raw("echo", "boom", b"").unwrap_err();
        assert!(e.is_trap(&membrane_runtime::TrapKind::Unreachable), "{e}");
        // The trapped instance was replaced.
        assert_eq!(
            runtime.call_raw("echo", "echo", b"again").unwrap(),
            b"again"
        );
        let info = runtime.module("echo").unwrap();
        assert_eq!(info.functions, ["echo", "boom", "loop"]);
        assert_eq!((info.counters.calls, info.counters.traps), (3, 1));
    }

    /// A runtime module's limits reach its instances' stores (and survive a reset);
    /// limits the engine cannot enforce are refused; the content hash is blake3 of the
    /// wasm bytes.
    #[test]
    fn runtime_modules_carry_their_limits() {
        let wasm = wat::parse_str(ECHO).unwrap();
        let runtime = membrane_runtime::Runtime::new(membrane_runtime::RuntimeConfig::default());
        let link = RuntimeLink::new("echo", membrane_runtime::Grants::none(), &runtime);
        let engine = Engine::new(EngineConfig::default().timeout(None)).unwrap();
        let pre = engine
            .load(&wasm)
            .unwrap()
            .prepare(&HostFunctions::<()>::new())
            .unwrap();
        assert_eq!(
            RuntimeModule::content_hash(&pre).0,
            *blake3::hash(&wasm).as_bytes()
        );
        let mut instance = pre
            .limited(&LimitOverrides::default().fuel(Some(1000)), &link)
            .unwrap()
            .instantiate()
            .unwrap();
        let e = instance
            .call_envelope(CallContext::host(1), "loop", b"", &mut |_| ())
            .unwrap_err();
        assert!(e.is_trap(&membrane_runtime::TrapKind::OutOfFuel), "{e}");

        // The same limits through a reset.
        let limits = CallLimits::new(&engine, &LimitOverrides::default().fuel(Some(1000))).unwrap();
        let mut instance = pre.instantiate_limited((), limits, None).unwrap();
        instance.reset(&pre).unwrap();
        instance.call_raw("echo", b"x").unwrap();
        assert!(instance.fuel_remaining().unwrap() < 1000);

        // No clock on this engine: a timeout cannot be enforced.
        let e = pre
            .limited(
                &LimitOverrides::default().timeout(Some(std::time::Duration::from_millis(5))),
                &link,
            )
            .err()
            .unwrap();
        assert!(
            matches!(e.kind(), ErrorKind::Config { reason } if reason.contains("timeout")),
            "{e}"
        );
        let unmetered = Engine::new(EngineConfig::default().fuel(None)).unwrap();
        let pre = unmetered
            .load(&wasm)
            .unwrap()
            .prepare(&HostFunctions::<()>::new())
            .unwrap();
        let e = pre
            .limited(&LimitOverrides::default().fuel(Some(1)), &link)
            .err()
            .unwrap();
        assert!(
            matches!(e.kind(), ErrorKind::Config { reason } if reason.contains("fuel")),
            "{e}"
        );
    }
}
