//! The imports of the standard host services (import module `membrane_services`,
//! `docs/abi.md` §10) and what their wrappers share. The public modules `log`, `clock`,
//! `random`, `effects`, `debug`, `kv` and `bus` call them with the protocol of host
//! functions ([`crate::host`]).
//!
//! Each import is referenced only by the wrapper functions that use it, so a module
//! imports only the services it calls: a runtime refuses a module that imports a
//! service its host did not grant.
//!
//! Off wasm32 the imports are stand-ins that are never called: the host-call functions
//! answer `NOT_FOUND` first.

use serde::Deserialize;

use crate::error::Error;
use crate::host::response_error;

/// Declares the imports of `membrane_services` named in the list (each with the
/// host-function signature) and a safe function of the same name calling each.
macro_rules! service_imports {
    ($($name:ident),* $(,)?) => {
        /// The imports of `membrane_services`, as safe functions.
        #[cfg(target_arch = "wasm32")]
        pub(crate) mod imports {
            mod raw {
                #[link(wasm_import_module = "membrane_services")]
                unsafe extern "C" {
                    $(
                        pub(super) fn $name(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
                    )*
                }
            }

            // SAFETY (all of them): the import reads the request envelope and writes the
            // response buffer that the `crate::host` functions pass (live regions of
            // guest memory that no Rust reference points into during the call) and
            // returns a packed response location that they check before use.
            $(
                pub(crate) fn $name(p: u32, l: u32, rp: u32, rc: u32) -> u64 {
                    // SAFETY: see above.
                    unsafe { raw::$name(p, l, rp, rc) }
                }
            )*
        }

        /// Stand-ins for the imports of `membrane_services`.
        #[cfg(not(target_arch = "wasm32"))]
        pub(crate) mod imports {
            $(
                // Never called: off wasm32 the host-call functions answer `NOT_FOUND`
                // first.
                pub(crate) fn $name(_: u32, _: u32, _: u32, _: u32) -> u64 {
                    0
                }
            )*
        }

        /// The names of the imports declared here, in order.
        #[cfg(test)]
        const DECLARED: &[&str] = &[$(stringify!($name)),*];
    };
}

service_imports!(
    log,
    clock_wall,
    clock_monotonic,
    random,
    emit,
    assert_failed,
    breakpoint,
    kv_get,
    kv_put,
    kv_delete,
    kv_scan,
    bus_send,
    bus_broadcast,
    bus_recv,
    bus_pending,
);

/// Deserializes the response payload `payload` of the service `name` (postcard, the
/// whole payload), or says it does not decode.
pub(crate) fn decode<'a, T: Deserialize<'a>>(name: &str, payload: &'a [u8]) -> Result<T, Error> {
    membrane_codec::from_payload(payload).map_err(|e| response_error(name, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_types::ErrorCode;

    #[test]
    fn declares_every_service_import() {
        let names: alloc::vec::Vec<&str> = membrane_types::SERVICE_IMPORTS
            .iter()
            .map(|(name, _grant)| *name)
            .collect();
        assert_eq!(DECLARED, names.as_slice());
    }

    #[test]
    fn decode_takes_the_whole_payload() {
        assert_eq!(decode::<u32>("s", &[5]), Ok(5));
        for bad in [&[][..], &[5, 0][..], &[0x80][..]] {
            let e = decode::<u32>("membrane_services.x", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::HOST_FUNCTION_FAILED);
            assert!(
                e.message
                    .starts_with("host function membrane_services.x response: "),
                "{e}"
            );
        }
    }
}
