//! `membrane-runtime`'s executor seam ([`membrane_runtime::executor`]) implemented by
//! this crate's types: the engine loads, a module links, an `InstancePre` instantiates,
//! an instance calls, a cancel handle cancels. At the top of the crate: it only
//! delegates to the public methods of the layers below.

use membrane_runtime::Result;
use membrane_runtime::executor::{Canceller, Executor, GuestInstance, Instantiator, LoadedModule};

use crate::engine::Engine;
use crate::host_fn::HostFunctions;
use crate::instance::{Instance, InstancePre};
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
}

/// Instances start with the default host state.
impl<T: Default + Send + Sync + 'static> Instantiator for InstancePre<T> {
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
        Ok(Box::new(InstancePre::instantiate(self, T::default())?))
    }
}

impl<T: Send + 'static> GuestInstance for Instance<T> {
    fn call_envelope(
        &mut self,
        name: &str,
        input: &[u8],
        read: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        self.call_with(name, input, |output| read(output))
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
  (func (export "boom") (param i32 i32) (result i64) unreachable))"#;

    /// Load, link, instantiate, call and cancel through the seam alone.
    #[test]
    fn the_seam_loads_instantiates_and_calls() {
        let engine: Box<dyn Executor> = Box::new(Engine::new(EngineConfig::default()).unwrap());
        let module = engine.load(&wat::parse_str(ECHO).unwrap()).unwrap();
        assert_eq!(module.function_names(), ["echo", "boom"]);
        let mut instance = module.link().unwrap().instantiate().unwrap();
        let mut seen = Vec::new();
        instance
            .call_envelope("echo", b"hello", &mut |out| seen.extend_from_slice(out))
            .unwrap();
        assert_eq!(seen, b"hello");
        // Nothing runs: a cancel is forgotten by the next call.
        instance.canceller().cancel();
        let e = instance
            .call_envelope("boom", b"", &mut |_| ())
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Trap(_)), "{e}");
        assert!(instance.is_poisoned());
    }
}
