//! Expansion of `#[start]` and `#[stop]`, the lifecycle hooks, as a plain function over
//! token streams.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr, ReturnType};

use crate::expand::is_result;

/// Which lifecycle hook an attribute defines (`docs/abi.md` §8).
#[derive(Clone, Copy)]
pub(crate) enum Hook {
    /// `#[start]`: the export `__membrane_start`.
    Start,
    /// `#[stop]`: the export `__membrane_stop`.
    Stop,
}

impl Hook {
    /// The attribute as written, for error messages.
    fn attribute(self) -> &'static str {
        match self {
            Hook::Start => "#[start]",
            Hook::Stop => "#[stop]",
        }
    }

    /// The ABI's name of the export.
    fn export_name(self) -> &'static str {
        match self {
            Hook::Start => membrane_types::START_EXPORT,
            Hook::Stop => membrane_types::STOP_EXPORT,
        }
    }
}

/// Expands `#[start(attr)] item` or `#[stop(attr)] item`.
pub(crate) fn hook(hook: Hook, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let func: ItemFn = syn::parse2(item)?;
    if let Some(first) = attr.into_iter().next() {
        return Err(syn::Error::new(
            first.span(),
            format!("{} takes no options", hook.attribute()),
        ));
    }
    check_signature(hook, &func)?;
    let ident = &func.sig.ident;
    let shim = format_ident!("__membrane_hook_{}", ident);
    let export_name = LitStr::new(hook.export_name(), Span::call_site());
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[cfg(target_arch = "wasm32")]
        #[unsafe(export_name = #export_name)]
        pub extern "C" fn #shim() -> u64 {
            ::membrane_guest::__rt::run_hook(#ident)
        }
    })
}

/// No input, a `Result` output (its `Ok` type must be `()`: the compiler checks it
/// against `run_hook`), not generic, not async, not unsafe.
fn check_signature(hook: Hook, func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    let attribute = hook.attribute();
    if let Some(asyncness) = sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            format!("{attribute} functions cannot be async"),
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span(),
            format!("{attribute} functions cannot be unsafe"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("{attribute} functions cannot be generic"),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new(
            sig.inputs.span(),
            format!("{attribute} functions take no input"),
        ));
    }
    match &sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => Ok(()),
        ReturnType::Type(_, ty) => Err(syn::Error::new(
            ty.span(),
            format!("{attribute} functions return `Result<(), E>`"),
        )),
        ReturnType::Default => Err(syn::Error::new(
            Span::call_site(),
            format!("{attribute} functions return `Result<(), E>`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(which: Hook, attr: &str, item: &str) -> Result<String, String> {
        hook(which, attr.parse().unwrap(), item.parse().unwrap())
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exports_under_the_abi_names() {
        for (which, name) in [
            (Hook::Start, "__membrane_start"),
            (Hook::Stop, "__membrane_stop"),
        ] {
            let out = expand(which, "", "fn init() -> Result<(), Error> { Ok(()) }").unwrap();
            for needle in [
                &format!("export_name = \"{name}\"") as &str,
                "pub extern \"C\" fn __membrane_hook_init () -> u64",
                "{ :: membrane_guest :: __rt :: run_hook (init) }",
                "# [cfg (target_arch = \"wasm32\")]",
                "fn init () -> Result < () , Error > { Ok (()) }",
            ] {
                assert!(out.contains(needle), "{needle:?} not in {out}");
            }
        }
    }

    #[test]
    fn rejects_bad_hooks() {
        for (attr, item, message) in [
            (
                "",
                "fn f(x: u32) -> Result<(), E> { Ok(()) }",
                "#[start] functions take no input",
            ),
            ("", "fn f() {}", "#[start] functions return `Result<(), E>`"),
            (
                "",
                "fn f() -> u32 { 1 }",
                "#[start] functions return `Result<(), E>`",
            ),
            (
                "",
                "async fn f() -> Result<(), E> { Ok(()) }",
                "cannot be async",
            ),
            (
                "",
                "unsafe fn f() -> Result<(), E> { Ok(()) }",
                "cannot be unsafe",
            ),
            (
                "",
                "fn f<T>() -> Result<(), E> { Ok(()) }",
                "cannot be generic",
            ),
            (
                "",
                "fn f<'a>() -> Result<(), E> { Ok(()) }",
                "cannot be generic",
            ),
            (
                "name = \"x\"",
                "fn f() -> Result<(), E> { Ok(()) }",
                "#[start] takes no options",
            ),
        ] {
            let err = expand(Hook::Start, attr, item).unwrap_err();
            assert!(err.contains(message), "{message:?} not in {err:?}");
        }
        let err = expand(Hook::Stop, "", "fn f(&self) -> Result<(), E> { Ok(()) }").unwrap_err();
        assert!(err.contains("#[stop] functions take no input"), "{err}");
    }
}
