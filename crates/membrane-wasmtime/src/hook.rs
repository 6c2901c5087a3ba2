//! Lifecycle hooks (`docs/abi.md` §8): `__membrane_start` and `__membrane_stop` run as
//! top-level calls without input, their result 0 or an error envelope; beside
//! `call.rs`, below `instance.rs`.

use membrane_codec::Codec;
use membrane_runtime::executor::Hook;
use membrane_runtime::memory::guest_region;
use membrane_runtime::{Error, Result, protocol};
use membrane_types::unpack_ptr_len;
use wasmtime::{Store, TypedFunc};

use crate::call::Arena;
use crate::store::{Handles, StoreData};
use crate::trap::classify;

/// Runs `hook` in the instance whose exports are `handles`, in a store armed for a
/// top-level call (`begin_top_level_call`); `Ok(())` when the module does not export
/// it.
///
/// Like a top-level call, it runs at depth 1 (host functions it calls may call back
/// into the instance) with no call running in the store: the instance is borrowed
/// mutably for the whole of it.
pub(crate) fn run_hook<T: 'static>(
    store: &mut Store<StoreData<T>>,
    handles: &Handles,
    hook: Hook,
) -> Result<()> {
    let name = hook.export_name();
    let Some(func) = handles.instance.get_func(&mut *store, name) else {
        return Ok(());
    };
    // Its type was checked when the module was loaded (`check_abi`).
    let func: TypedFunc<(), u64> = func
        .typed(&*store)
        .map_err(|e| Error::host(format_args!("export `{name}`: {e:#}")))?;
    store.data_mut().depth = 1;
    let result = call_hook(store, handles, &func, name);
    store.data_mut().depth = 0;
    result
}

/// The hook itself: the arena reset, the hook called, its error envelope read.
fn call_hook<T: 'static>(
    store: &mut Store<StoreData<T>>,
    handles: &Handles,
    func: &TypedFunc<(), u64>,
    name: &'static str,
) -> Result<()> {
    // Reclaims the previous call's envelopes, as every top-level call does; a hook has
    // no input, so nothing is allocated and the pointer returned is not used.
    if let Err(e) = handles.alloc.call(&mut *store, (0, Arena::Reset as u32)) {
        return Err(classify(store.data_mut(), e));
    }
    let packed = func
        .call(&mut *store, ())
        .map_err(|e| classify(store.data_mut(), e))?;
    if let Some(fault) = store.data_mut().fault.take() {
        // A nested call trapped, and the host function that saw it let the guest go on.
        return Err(fault);
    }
    if packed == 0 {
        return Ok(());
    }
    let (ptr, len) = unpack_ptr_len(packed);
    let bytes = guest_region(
        handles.memory.data(&*store),
        ptr,
        len,
        "lifecycle hook error envelope",
    )?;
    Err(protocol::hook_error(
        &Codec::new(store.data().codec),
        bytes,
        name,
    ))
}

#[cfg(test)]
mod tests {
    use membrane_codec::{Codec, CodecConfig, ErrorCode, Flags};
    use membrane_runtime::ErrorKind;

    use crate::config::EngineConfig;
    use crate::engine::Engine;
    use crate::host_fn::HostFunctions;
    use crate::instance::Instance;

    /// `(data (i32.const offset) "...")` holding `bytes`.
    fn data(offset: u32, bytes: &[u8]) -> String {
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        format!(r#"(data (i32.const {offset}) "{escaped}")"#)
    }

    /// A module whose allocation entry tells the host function `reset` when it resets
    /// its arena, with `hooks` (which may call the host function `note`).
    fn instance(hooks: &str) -> Instance<u32> {
        let codec = Codec::new(CodecConfig::default());
        let request = codec.encode(&[], Flags::EXPECTS_RESPONSE).unwrap();
        let error = codec
            .encode_error(ErrorCode::from(1234), "stop failed")
            .unwrap();
        let wat = format!(
            r#"(module
  (import "membrane_host" "note" (func $note (param i32 i32 i32 i32) (result i64)))
  (import "membrane_host" "reset" (func $reset (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "__membrane_abi_v1"))
  (func (export "__membrane_alloc") (param i32 i32) (result i32)
    (if (local.get 1) (then
      (drop (call $reset (i32.const 128) (i32.const {len}) (i32.const 0) (i32.const 0)))))
    i32.const 1024)
  {request}
  {error}
  {hooks})"#,
            len = request.len(),
            request = data(128, &request),
            error = data(256, &error),
            hooks = hooks.replace("ERROR", &format!("{}", (256u64 << 32) | error.len() as u64)),
        );
        let engine = Engine::new(EngineConfig::default()).unwrap();
        let module = engine.load(&wat::parse_str(wat).unwrap()).unwrap();
        let mut host = HostFunctions::<u32>::new();
        host.register(
            "note",
            |ctx, (): ()| -> Result<(), membrane_runtime::HostError> {
                *ctx.state_mut() += 1;
                Ok(())
            },
        )
        .register(
            "reset",
            |ctx, (): ()| -> Result<(), membrane_runtime::HostError> {
                *ctx.state_mut() += 100;
                Ok(())
            },
        );
        module.prepare(&host).unwrap().instantiate(0).unwrap()
    }

    /// A hook runs as a top-level call (the arena reset first) and may call host
    /// functions; its error envelope is the guest's error and poisons nothing.
    #[test]
    fn hooks_run_as_top_level_calls() {
        let mut instance = instance(
            r#"(func (export "__membrane_start") (result i64)
    (drop (call $note (i32.const 128) (i32.const 12) (i32.const 0) (i32.const 0)))
    i64.const 0)
  (func (export "__membrane_stop") (result i64) i64.const ERROR)"#,
        );
        // Instantiation runs no hook.
        assert_eq!(*instance.state(), 0);
        instance.start().unwrap();
        assert_eq!(*instance.state(), 101);
        for _ in 0..2 {
            let e = instance.stop().unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Guest { code, message } if *code == ErrorCode::from(1234) && message == "stop failed"),
                "{e}"
            );
            assert!(!instance.is_poisoned());
        }
        assert_eq!(*instance.state(), 301);
    }

    /// Without hooks, `start` and `stop` do nothing (not even reset the arena).
    #[test]
    fn absent_hooks_are_no_ops() {
        let mut instance = instance("");
        instance.start().unwrap();
        instance.stop().unwrap();
        assert_eq!(*instance.state(), 0);
    }

    /// A trapping hook poisons the instance, which then refuses to run hooks.
    #[test]
    fn a_trap_in_a_hook_poisons() {
        let mut instance = instance(
            r#"(func (export "__membrane_start") (result i64) unreachable)
  (func (export "__membrane_stop") (result i64) i64.const 0)"#,
        );
        let e = instance.start().unwrap_err();
        assert!(e.is_trap(&membrane_runtime::TrapKind::Unreachable), "{e}");
        assert!(instance.is_poisoned());
        let e = instance.stop().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Poisoned { .. }), "{e}");
    }
}
