//! The runtime's imports (`membrane_runtime`, `docs/abi.md` §8): a guest's calls to
//! other modules and to host callables, its call's context, and the list of modules;
//! and the host services (`membrane_services`, §10): all served through the instance's
//! [`RuntimeLink`]. Same protocol as a host function (request envelope in, response
//! envelope out); every failure the guest did not cause by breaking the ABI is an error
//! envelope, never a trap of the caller.

use membrane_types::{
    CALL_CALLABLE_IMPORT, CALL_IMPORT, CONTEXT_IMPORT, ErrorCode, MODULES_IMPORT, RUNTIME_MODULE,
    SERVICES_MODULE,
};
use wasmtime::{Caller, Linker};

use crate::host_fn::{
    ResponseBuffer, link_import, read_request, respond_bytes, write_error, write_value,
};
use crate::store::StoreData;
use membrane_runtime::imports::RUNTIME_IMPORTS;
use membrane_runtime::{CallContext, Error, HostError, Result, RuntimeLink, ServiceImport};

/// How one runtime import serves a call: request region, response buffer; packed
/// response location.
type Serve<T> = fn(&mut Caller<'_, StoreData<T>>, u32, u32, ResponseBuffer) -> Result<u64>;

/// Adds the runtime's imports to a linker (always: outside a runtime they answer
/// `NOT_IN_RUNTIME`).
pub(crate) fn link<T: Send + 'static>(linker: &mut Linker<StoreData<T>>) -> Result<()> {
    for name in RUNTIME_IMPORTS {
        let serve: Serve<T> = match name {
            CALL_IMPORT => serve_call::<T>,
            CALL_CALLABLE_IMPORT => serve_callable::<T>,
            CONTEXT_IMPORT => serve_context::<T>,
            MODULES_IMPORT => serve_modules::<T>,
            other => {
                return Err(Error::host(format_args!(
                    "no server for the runtime import `{other}`"
                )));
            }
        };
        // A callable's panic is caught earlier, as the guest's error.
        link_import(
            linker,
            RUNTIME_MODULE,
            name,
            move |caller, _, ptr, len, buf| serve(caller, ptr, len, buf),
        )?;
    }
    Ok(())
}

/// Adds the service imports to a linker (always: a runtime refuses a module that
/// imports a service it was not granted; outside a runtime they answer
/// `NOT_IN_RUNTIME`).
pub(crate) fn link_services<T: Send + 'static>(linker: &mut Linker<StoreData<T>>) -> Result<()> {
    for import in ServiceImport::ALL {
        link_import(
            linker,
            SERVICES_MODULE,
            import.name(),
            move |caller, _, ptr, len, buf| serve_service(caller, import, ptr, len, buf),
        )?;
    }
    Ok(())
}

/// Serves one service import through the instance's link, within the running call's
/// budgets.
fn serve_service<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    import: ServiceImport,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    let data = caller.data_mut();
    let link = data.link.clone();
    let request_id = data.ctx.request_id;
    // Taken out of the store while the request is borrowed from its memory, put back
    // after.
    let mut budget = std::mem::take(&mut data.services);
    let result = read_request(caller, ptr, len, buf, |_, payload| match &link {
        Some(link) => link.serve(import, request_id, &mut budget, payload),
        None => Err(not_in_runtime()),
    });
    caller.data_mut().services = budget;
    respond_bytes(caller, buf, result?)
}

/// The instance's runtime link and the context of a call it makes now: from this
/// module, in the running request, one deeper than the running call, ending by the
/// running call's deadline. Refuses (as data for the guest) outside a runtime and
/// beyond the depth limit.
fn outgoing<T: 'static>(
    caller: &Caller<'_, StoreData<T>>,
) -> std::result::Result<(RuntimeLink, CallContext), HostError> {
    let data = caller.data();
    let Some(link) = data.link.clone() else {
        return Err(not_in_runtime());
    };
    let depth = data.depth.saturating_add(1);
    if depth > data.max_depth {
        return Err(HostError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!(
                "call chain too deep: a call at depth {depth} exceeds the limit of {}",
                data.max_depth
            ),
        ));
    }
    let ctx = CallContext::routed(
        link.module().clone(),
        data.ctx.request_id,
        depth,
        data.timer.deadline_instant(),
    );
    Ok((link, ctx))
}

#[cold]
fn not_in_runtime() -> HostError {
    HostError::new(
        ErrorCode::NOT_IN_RUNTIME,
        "this instance does not run in a membrane runtime",
    )
}

/// A postcard `&str` at the start of `bytes` (a varint length, then UTF-8), and the
/// bytes after it; `None` if it is not one. What `postcard::take_from_bytes::<&str>`
/// does, without the deserializer's machinery (a tenth of the instructions).
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    // A LEB128 varint of at most 5 bytes: a guest's `usize` is 32 bits, and a name is
    // far shorter than that anyway.
    let mut len: u32 = 0;
    let mut at = 0;
    loop {
        let byte = *bytes.get(at)?;
        if at == 4 && byte > 0x0f {
            // Past u32 (or a sixth byte to come).
            return None;
        }
        len |= u32::from(byte & 0x7f) << (7 * at);
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at == 5 {
            return None;
        }
    }
    let (text, rest) = bytes.get(at..)?.split_at_checked(len as usize)?;
    Some((std::str::from_utf8(text).ok()?, rest))
}

#[cold]
fn bad_call(what: &str) -> HostError {
    HostError::new(
        ErrorCode::INVALID_INPUT,
        format!("call request does not decode: {what} is not a postcard string"),
    )
}

#[cold]
fn bad_request(what: &str, e: postcard::Error) -> HostError {
    HostError::new(
        ErrorCode::INVALID_INPUT,
        format!("{what} request does not decode: {e}"),
    )
}

/// Serves a call that leaves the instance (to another module, to a callable): the
/// request is read in place (`what` names it in errors) and handed to `route` with the
/// instance's link and the outgoing call's context; the answer is written back. The
/// callee runs while the request is borrowed: its input is copied once, from this
/// instance's memory to where the callee reads it.
fn serve_outgoing<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
    route: impl FnOnce(RuntimeLink, CallContext, &[u8]) -> std::result::Result<Vec<u8>, HostError>,
) -> Result<u64> {
    let outgoing = outgoing(caller);
    let result = read_request(caller, ptr, len, buf, |_, payload| {
        let (link, ctx) = outgoing?;
        route(link, ctx, payload)
    })?;
    respond_bytes(caller, buf, result)
}

/// `membrane_runtime.call`: request `(module, function)` (postcard) then the input
/// payload; response: the callee's output payload.
fn serve_call<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    serve_outgoing(caller, ptr, len, buf, |link, ctx, payload| {
        let (module, rest) = take_str(payload).ok_or_else(|| bad_call("the module's name"))?;
        let (function, input) = take_str(rest).ok_or_else(|| bad_call("the function's name"))?;
        link.router().call(ctx, module, function, input)
    })
}

/// `membrane_runtime.call_callable`: request: the id (postcard `u64`) then the input
/// payload; response: the callable's output payload.
fn serve_callable<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    serve_outgoing(caller, ptr, len, buf, |link, ctx, payload| {
        let (id, input) =
            postcard::take_from_bytes::<u64>(payload).map_err(|e| bad_request("callable", e))?;
        link.router().call_callable(&ctx, id, input)
    })
}

/// `membrane_runtime.context`: request empty; response `(module, caller, request_id,
/// depth)` (postcard).
fn serve_context<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    read_request(caller, ptr, len, buf, |_, _| ())?;
    let data = caller.data();
    let Some(link) = &data.link else {
        return write_error(caller, &not_in_runtime(), buf);
    };
    let module = link.module().clone();
    let (from, request, depth) = (data.ctx.caller.clone(), data.ctx.request_id, data.depth);
    write_value(caller, &(&*module, from.as_deref(), request, depth), buf)
}

/// `membrane_runtime.modules`: request empty; response `Vec<(module, functions)>`
/// (postcard), when the runtime allows discovery.
fn serve_modules<T: 'static>(
    caller: &mut Caller<'_, StoreData<T>>,
    ptr: u32,
    len: u32,
    buf: ResponseBuffer,
) -> Result<u64> {
    read_request(caller, ptr, len, buf, |_, _| ())?;
    let listed = match &caller.data().link {
        Some(link) => link.modules(),
        None => Err(not_in_runtime()),
    };
    match listed {
        Ok(modules) => write_value(caller, &modules, buf),
        Err(e) => write_error(caller, &e, buf),
    }
}

#[cfg(test)]
mod tests {
    use super::take_str;

    /// `take_str` reads what postcard writes, and refuses what postcard would.
    #[test]
    fn take_str_matches_postcard() {
        for (a, b) in [
            ("", ""),
            ("echo", "echo"),
            (&*"m".repeat(200), "f"),
            ("é", "日本"),
        ] {
            let mut bytes = postcard::to_allocvec(&(a, b)).unwrap();
            bytes.extend_from_slice(b"rest");
            let (x, rest) = take_str(&bytes).unwrap();
            let (y, rest) = take_str(rest).unwrap();
            assert_eq!((x, y, rest), (a, b, &b"rest"[..]));
        }
        for bad in [
            &b""[..],
            &[0x05, b'a'],                         // shorter than its length
            &[0x80],                               // a varint that never ends
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // longer than 5 bytes
            &[0xff, 0xff, 0xff, 0xff, 0x7f],       // a length past u32
            &[0x80, 0x80, 0x80, 0x80, 0x10],       // 2^32, which would wrap to 0
            &[0x01, 0xff],                         // not UTF-8
        ] {
            assert!(take_str(bad).is_none(), "{bad:?}");
            assert!(postcard::take_from_bytes::<&str>(bad).is_err(), "{bad:?}");
        }
    }
}
