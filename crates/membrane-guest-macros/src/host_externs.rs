//! Expansion of `host_externs!`, as a plain function over token streams.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Token};

/// Expands `host_externs!(input)`.
pub(crate) fn host_externs(input: TokenStream) -> syn::Result<TokenStream> {
    let names: Names = syn::parse2(input)?;
    let mut seen: Vec<String> = Vec::new();
    for name in names.typed.iter().chain(&names.bytes) {
        let text = name.unraw().to_string();
        if seen.contains(&text) {
            return Err(syn::Error::new(
                name.span(),
                format!("host function `{text}` is declared twice"),
            ));
        }
        seen.push(text);
    }
    let typed = names.typed.iter().map(typed);
    let bytes = names.bytes.iter().map(bytes);
    Ok(quote! { #(#typed)* #(#bytes)* })
}

/// The names of `typed, names; bytes: bytes, names`, either list possibly empty.
struct Names {
    typed: Vec<Ident>,
    bytes: Vec<Ident>,
}

impl Parse for Names {
    fn parse(input: ParseStream<'_>) -> syn::Result<Names> {
        let mut typed = Vec::new();
        // The typed list, unless the input starts with the `bytes:` section.
        if !(input.peek(Ident) && input.peek2(Token![:])) {
            while !input.is_empty() && !input.peek(Token![;]) {
                typed.push(input.call(name)?);
                if input.is_empty() || input.peek(Token![;]) {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            if input.is_empty() {
                return Ok(Names {
                    typed,
                    bytes: Vec::new(),
                });
            }
            input.parse::<Token![;]>()?;
        }
        let mut bytes = Vec::new();
        if !input.is_empty() {
            let section: Ident = input.parse()?;
            if section != "bytes" {
                return Err(syn::Error::new(
                    section.span(),
                    "expected `bytes:` and the names of host functions that take and return raw bytes",
                ));
            }
            input.parse::<Token![:]>()?;
            let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(input, name)?;
            bytes.extend(names);
        }
        Ok(Names { typed, bytes })
    }
}

/// One name (a keyword only as a raw identifier).
fn name(input: ParseStream<'_>) -> syn::Result<Ident> {
    input
        .parse::<Ident>()
        .map_err(|e| syn::Error::new(e.span(), "expected the name of a host function"))
}

/// `fn name<I, O>(input: &I) -> Result<O, Error>`: postcard both ways.
fn typed(name: &Ident) -> TokenStream {
    let text = name.unraw().to_string();
    let doc = format!("Calls the host function `{text}`.");
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        pub fn #name<I, O>(input: &I) -> ::core::result::Result<O, ::membrane_guest::Error>
        where
            I: ::membrane_guest::__rt::serde::Serialize + ?Sized,
            O: ::membrane_guest::__rt::serde::de::DeserializeOwned,
        {
            #[cfg(target_arch = "wasm32")]
            {
                #[link(wasm_import_module = "membrane_host")]
                unsafe extern "C" {
                    fn #name(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
                }
                ::membrane_guest::__rt::call_host(
                    #text,
                    // SAFETY: the import reads the request envelope and writes the
                    // response buffer that `call_host` passes (both live regions of
                    // guest memory no Rust reference points into during the call) and
                    // returns a packed response location that `call_host` checks
                    // before use.
                    |p, l, rp, rc| unsafe { #name(p, l, rp, rc) },
                    input,
                )
            }
            #[cfg(not(target_arch = "wasm32"))]
            {
                ::membrane_guest::__rt::call_host(#text, |_, _, _, _| 0, input)
            }
        }
    }
}

/// `fn name(input: &[u8]) -> Result<Vec<u8>, Error>` and
/// `fn name_with<R>(input: &[u8], read: impl FnOnce(&[u8]) -> R) -> Result<R, Error>`:
/// the bytes themselves as the payload both ways.
fn bytes(name: &Ident) -> TokenStream {
    let text = name.unraw().to_string();
    let with = format_ident!("{}_with", name.unraw());
    let doc = format!(
        "Calls the host function `{text}` with `input` as the request payload and returns \
         a copy of the response payload (`{with}` reads it where it lies)."
    );
    let doc_with = format!(
        "Calls the host function `{text}` with `input` as the request payload and hands \
         the response payload to `read` where it lies, in the guest's buffer for host \
         calls or in its arena; returns what `read` returns."
    );
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        pub fn #name(
            input: &[u8],
        ) -> ::core::result::Result<::membrane_guest::__rt::Vec<u8>, ::membrane_guest::Error> {
            #with(input, |payload: &[u8]| ::membrane_guest::__rt::Vec::from(payload))
        }

        #[doc = #doc_with]
        #[allow(dead_code)]
        pub fn #with<R>(
            input: &[u8],
            read: impl ::core::ops::FnOnce(&[u8]) -> R,
        ) -> ::core::result::Result<R, ::membrane_guest::Error> {
            #[cfg(target_arch = "wasm32")]
            {
                #[link(wasm_import_module = "membrane_host")]
                unsafe extern "C" {
                    fn #name(ptr: u32, len: u32, resp_ptr: u32, resp_cap: u32) -> u64;
                }
                ::membrane_guest::__rt::call_host_bytes(
                    #text,
                    // SAFETY: as for a typed host function: the import reads the request
                    // and writes the response buffer that `call_host_bytes` passes (live
                    // regions no Rust reference points into during the call) and returns
                    // a packed response location that `call_host_bytes` checks before use.
                    |p, l, rp, rc| unsafe { #name(p, l, rp, rc) },
                    input,
                    read,
                )
            }
            #[cfg(not(target_arch = "wasm32"))]
            {
                ::membrane_guest::__rt::call_host_bytes(#text, |_, _, _, _| 0, input, read)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: &str) -> Result<String, String> {
        host_externs(input.parse().unwrap())
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    /// The names of the functions an expansion defines, in order.
    fn defined(input: &str) -> Vec<String> {
        let out = expand(input).unwrap();
        out.split("pub fn ")
            .skip(1)
            .map(|rest| rest.split(['<', '(', ' ']).next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn defines_one_function_per_typed_name_and_two_per_bytes_name() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("add", &["add"]),
            ("add, log_line,", &["add", "log_line"]),
            ("add, log_line;", &["add", "log_line"]),
            (
                "add, log_line; bytes: echo_bytes",
                &["add", "log_line", "echo_bytes", "echo_bytes_with"],
            ),
            ("bytes: a, b,", &["a", "a_with", "b", "b_with"]),
            ("; bytes: a", &["a", "a_with"]),
            ("add; bytes:", &["add"]),
            ("bytes", &["bytes"]),
            ("bytes, add", &["bytes", "add"]),
        ];
        for (input, want) in cases {
            assert_eq!(defined(input), *want, "host_externs!({input})");
        }
    }

    #[test]
    fn typed_names_call_the_typed_runtime() {
        let out = expand("add").unwrap();
        for needle in [
            "pub fn add < I , O > (input : & I) -> :: core :: result :: Result < O , :: membrane_guest :: Error >",
            "# [link (wasm_import_module = \"membrane_host\")]",
            "fn add (ptr : u32 , len : u32 , resp_ptr : u32 , resp_cap : u32) -> u64 ;",
            ":: membrane_guest :: __rt :: call_host (\"add\" ,",
        ] {
            assert!(out.contains(needle), "{needle:?} not in {out}");
        }
    }

    #[test]
    fn bytes_names_call_the_bytes_runtime_under_their_own_import() {
        let out = expand("bytes: echo_bytes").unwrap();
        for needle in [
            "pub fn echo_bytes (input : & [u8] ,) -> :: core :: result :: Result < :: membrane_guest :: __rt :: Vec < u8 > , :: membrane_guest :: Error >",
            "echo_bytes_with (input , | payload : & [u8] | :: membrane_guest :: __rt :: Vec :: from (payload))",
            "pub fn echo_bytes_with < R > (input : & [u8] , read : impl :: core :: ops :: FnOnce (& [u8]) -> R ,)",
            "fn echo_bytes (ptr : u32 , len : u32 , resp_ptr : u32 , resp_cap : u32) -> u64 ;",
            ":: membrane_guest :: __rt :: call_host_bytes (\"echo_bytes\" ,",
        ] {
            assert!(out.contains(needle), "{needle:?} not in {out}");
        }
        assert!(
            !out.contains("echo_bytes_with (ptr"),
            "the import is `echo_bytes`"
        );
    }

    #[test]
    fn raw_identifiers_import_the_plain_name() {
        let out = expand("r#type; bytes: r#match").unwrap();
        assert!(out.contains("call_host (\"type\""), "{out}");
        assert!(out.contains("call_host_bytes (\"match\""), "{out}");
        assert!(out.contains("pub fn match_with"), "{out}");
    }

    #[test]
    fn rejects_bad_input() {
        for (input, message) in [
            ("add; raw: echo", "expected `bytes:`"),
            ("add, add", "host function `add` is declared twice"),
            ("add; bytes: add", "host function `add` is declared twice"),
            ("bytes: a, a", "host function `a` is declared twice"),
            ("add log_line", "expected `,`"),
            ("add; bytes: a; b", "expected `,`"),
            ("add; bytes a", "expected `:`"),
            ("\"add\"", "expected the name of a host function"),
            ("add, 7", "expected the name of a host function"),
            ("add, type", "expected the name of a host function"),
        ] {
            let err = expand(input).unwrap_err();
            assert!(err.contains(message), "{input}: {message:?} not in {err:?}");
        }
    }
}
