//! The call path: a guest function called with an input envelope, its output read,
//! at the top level or nested in a host function; below both `instance.rs` and
//! `host_fn.rs`.

use membrane_codec::Codec;
use membrane_runtime::imports::GUEST_FUNCTION;
use membrane_runtime::memory::{guest_region, guest_region_mut};
use membrane_runtime::protocol;
use membrane_runtime::{AbiViolation, Error, ErrorKind, LimitKind, Result};
use membrane_types::unpack_ptr_len;
use wasmtime::{AsContextMut, Store, StoreContextMut, TypedFunc};

use crate::store::{Handles, StoreData};
use crate::trap::{alloc_failed, classify};

/// Arms fuel and the timer for a top-level call (or an instantiation).
#[inline(always)]
pub(crate) fn begin_top_level_call<T: 'static>(store: &mut Store<StoreData<T>>) -> Result<()> {
    let data = store.data_mut();
    data.begin_call();
    if let Some(limit) = data.fuel_limit {
        store
            .set_fuel(limit)
            .map_err(|e| Error::host(format_args!("cannot set fuel: {e:#}")))?;
    }
    store.set_epoch_deadline(1);
    Ok(())
}

/// A top-level call of a guest function: made by the host (or by a runtime for
/// another module) when no call runs in the store; the guest's per-call arena is reset
/// first. `depth` is the call's depth in its chain: 1 for a call from the host (within
/// any depth limit: `max_call_depth` is at least 1), more for a call from another
/// module (checked by the caller against the limit).
///
/// The instance is borrowed mutably for the whole of a top-level call, so none can run
/// in its store already, and there is no outer call to record a fault for.
#[inline(always)]
pub(crate) fn call_top_level<T: 'static, R>(
    store: &mut Store<StoreData<T>>,
    handles: &Handles,
    depth: u32,
    name: &str,
    input: &[u8],
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let mut store = store.as_context_mut();
    let func = function(&mut store, handles, name)?;
    store.data_mut().depth = depth;
    let result = call_func(&mut store, handles, func, input, Arena::Reset, read);
    store.data_mut().depth = 0;
    result
}

/// A nested call of a guest function, made by a host function while a call runs in
/// the store: input envelope in, output out, in the arena of the calls below it.
///
/// A nested call (made by a host function) that fails with an error that poisons
/// records a copy of it as the store's fault: the host function may swallow the error,
/// but no more of the instance's code runs (a further nested call is refused with the
/// same error, and the guest is stopped as soon as the host function returns) and the
/// outer call fails with it. The depth limit is the exception (`docs/abi.md` §6): it
/// refuses the nested call before any guest code runs, so the instance is intact and
/// the host function may hand the refusal to the guest as an error envelope.
pub(crate) fn call_nested<T: 'static, R>(
    mut store: impl AsContextMut<Data = StoreData<T>>,
    handles: &Handles,
    name: &str,
    input: &[u8],
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let mut store = store.as_context_mut();
    debug_assert!(store.data().depth > 0, "a nested call outside a call");
    let result = call_at_depth(&mut store, handles, name, input, read);
    if let Err(e) = &result
        && e.poisons()
        && !matches!(e.kind(), ErrorKind::Limit(LimitKind::CallDepth { .. }))
    {
        store.data_mut().set_fault(e.copy_of_fault());
    }
    result
}

fn call_at_depth<T: 'static, R>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &Handles,
    name: &str,
    input: &[u8],
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let data = store.data_mut();
    if let Some(fault) = &data.fault {
        // An earlier nested call of the same outer call trapped: no more guest code runs.
        return Err(fault.copy_of_fault());
    }
    if data.depth >= data.max_depth {
        return Err(ErrorKind::Limit(LimitKind::CallDepth {
            limit: data.max_depth,
        })
        .into());
    }
    let func = function(store, handles, name)?;
    store.data_mut().depth += 1;
    let result = call_func(store, handles, func, input, Arena::Keep, read);
    store.data_mut().depth -= 1;
    result
}

/// What the guest's allocation entry does with its per-call arena before it allocates
/// the input envelope (its `reset` argument, `docs/abi.md` §2).
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Arena {
    /// Reclaim every envelope of the previous call: a top-level call.
    Reset = 1,
    /// Keep them: a nested call, whose callers' envelopes are still in use.
    Keep = 0,
}

/// The call itself: input envelope written into memory from the allocation entry, the
/// guest function called, its output read by `read`.
// Always inlined: in its own module, away from `Instance::call_envelope`, LLVM stopped
// inlining it into the top-level call (24 instructions more per call).
#[inline(always)]
fn call_func<T: 'static, R>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &Handles,
    func: &TypedFunc<(u32, u32), u64>,
    input: &[u8],
    arena: Arena,
    read: impl FnOnce(&Codec, &[u8]) -> Result<R>,
) -> Result<R> {
    let (memory, alloc) = (handles.memory, &handles.alloc);
    let codec = Codec::new(store.data().codec);
    let len = protocol::input_envelope_len(input.len())?;
    let ptr = match alloc.call(&mut *store, (len, arena as u32)) {
        Ok(0) => return Err(alloc_failed(store.data(), len)),
        Ok(ptr) => ptr,
        Err(e) => return Err(classify(store.data_mut(), e)),
    };
    let region = guest_region_mut(
        memory.data_mut(&mut *store),
        ptr,
        len,
        "input envelope from the allocation entry",
    )?;
    let written = protocol::write_input(&codec, region, input)?;
    let packed = func
        .call(&mut *store, (ptr, written))
        .map_err(|e| classify(store.data_mut(), e))?;
    if let Some(fault) = store.data_mut().fault.take() {
        // A nested call trapped, and the host function that saw it let the guest go on.
        return Err(fault);
    }
    let (out_ptr, out_len) = unpack_ptr_len(packed);
    let bytes = guest_region(memory.data(&*store), out_ptr, out_len, "output envelope")?;
    read(&codec, bytes)
}

/// The typed guest function `name`, resolved once per instance.
#[inline(always)]
fn function<'h, T: 'static>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &'h Handles,
    name: &str,
) -> Result<&'h TypedFunc<(u32, u32), u64>> {
    if let Some(index) = handles.module.function_index(name)
        && let Some(func) = handles.functions[index].get()
    {
        return Ok(func);
    }
    resolve_function(store, handles, name)
}

/// [`function`] on first use of `name` (or for a name that is not callable).
#[cold]
#[inline(never)]
fn resolve_function<'h, T: 'static>(
    store: &mut StoreContextMut<'_, StoreData<T>>,
    handles: &'h Handles,
    name: &str,
) -> Result<&'h TypedFunc<(u32, u32), u64>> {
    let Some(index) = handles.module.function_index(name) else {
        return Err(ErrorKind::UnknownFunction {
            name: name.to_string(),
        }
        .into());
    };
    let slot = &handles.functions[index];
    if let Some(func) = slot.get() {
        return Ok(func);
    }
    let export = &handles.module.inner().functions[index];
    if let Err(found) = &export.signature {
        return Err(Error::abi(AbiViolation::WrongExportType {
            name: name.to_string(),
            expected: GUEST_FUNCTION.text,
            found: found.clone(),
        }));
    }
    let func = handles
        .instance
        .get_module_export(&mut *store, &export.export)
        .and_then(wasmtime::Extern::into_func)
        .ok_or_else(|| Error::host(format_args!("export `{name}` vanished from its instance")))?
        .typed::<(u32, u32), u64>(&*store)
        .map_err(|e| Error::host(format_args!("export `{name}`: {e:#}")))?;
    Ok(slot.get_or_init(|| func))
}
