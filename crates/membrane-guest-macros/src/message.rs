//! Expansion of `#[on_message]`, the message handler, as a plain function over token
//! streams.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Type};

use crate::expand::{Input, check_signature, ungroup};

/// The attribute as written, for error messages.
const ATTRIBUTE: &str = "#[on_message]";

/// Expands `#[on_message(attr)] item`: the function as it is, and on wasm32 the export
/// `__membrane_message` (`docs/abi.md` §10), a typed export of the message whose output
/// is `()` (an empty payload).
pub(crate) fn on_message(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let func: ItemFn = syn::parse2(item)?;
    if let Some(first) = attr.into_iter().next() {
        return Err(syn::Error::new(
            first.span(),
            format!("{ATTRIBUTE} takes no options"),
        ));
    }
    let message_ty = message_type(&func)?;
    check_signature(ATTRIBUTE, &func, &Input::Typed(message_ty))?;
    let ident = &func.sig.ident;
    let shim = format_ident!("__membrane_message_{}", ident);
    let export_name = LitStr::new(membrane_types::MESSAGE_EXPORT, Span::call_site());
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[cfg(target_arch = "wasm32")]
        #[unsafe(export_name = #export_name)]
        pub extern "C" fn #shim(ptr: u32, len: u32) -> u64 {
            ::membrane_guest::__rt::export_typed::<#message_ty, (), _>(ptr, len, #ident)
        }
    })
}

/// The type of the handler's one parameter, the message, taken by value.
fn message_type(func: &ItemFn) -> syn::Result<&Type> {
    let expected = "take the message: `fn f(msg: membrane_guest::bus::Message)`";
    let arg = match func.sig.inputs.first() {
        Some(FnArg::Typed(arg)) => arg,
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                format!("{ATTRIBUTE} functions cannot take `self`; they {expected}"),
            ));
        }
        None => {
            return Err(syn::Error::new(
                func.sig.ident.span(),
                format!("{ATTRIBUTE} functions {expected}"),
            ));
        }
    };
    if let Type::Reference(reference) = ungroup(&arg.ty) {
        return Err(syn::Error::new(
            reference.span(),
            format!("{ATTRIBUTE} functions take the message by value, not by reference"),
        ));
    }
    Ok(&arg.ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: &str, item: &str) -> Result<String, String> {
        on_message(attr.parse().unwrap(), item.parse().unwrap())
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exports_the_message_handler() {
        let out = expand(
            "",
            "fn handle(msg: membrane_guest::bus::Message) -> Result<(), Error> { Ok(()) }",
        )
        .unwrap();
        for needle in [
            "export_name = \"__membrane_message\"",
            "# [cfg (target_arch = \"wasm32\")]",
            "pub extern \"C\" fn __membrane_message_handle (ptr : u32 , len : u32) -> u64",
            "{ :: membrane_guest :: __rt :: export_typed :: < membrane_guest :: bus :: Message , () , _ > (ptr , len , handle) }",
            "fn handle (msg : membrane_guest :: bus :: Message) -> Result < () , Error > { Ok (()) }",
        ] {
            assert!(out.contains(needle), "{needle:?} not in {out}");
        }
    }

    #[test]
    fn rejects_bad_handlers() {
        for (attr, item, message) in [
            (
                "",
                "fn f() -> Result<(), E> { Ok(()) }",
                "#[on_message] functions take the message: `fn f(msg: membrane_guest::bus::Message)`",
            ),
            (
                "",
                "fn f(&self) -> Result<(), E> { Ok(()) }",
                "#[on_message] functions cannot take `self`",
            ),
            (
                "",
                "fn f(msg: &Message) -> Result<(), E> { Ok(()) }",
                "take the message by value, not by reference",
            ),
            (
                "",
                "fn f(msg: &[u8]) -> Result<(), E> { Ok(()) }",
                "take the message by value, not by reference",
            ),
            (
                "",
                "fn f(msg: Message, extra: u32) -> Result<(), E> { Ok(()) }",
                "#[on_message] functions take one input",
            ),
            (
                "",
                "fn f(msg: Message) {}",
                "#[on_message] functions return `Result<O, E>`",
            ),
            (
                "",
                "async fn f(msg: Message) -> Result<(), E> { Ok(()) }",
                "#[on_message] functions cannot be async",
            ),
            (
                "",
                "unsafe fn f(msg: Message) -> Result<(), E> { Ok(()) }",
                "#[on_message] functions cannot be unsafe",
            ),
            (
                "",
                "fn f<'a>(msg: Message) -> Result<(), E> { Ok(()) }",
                "#[on_message] functions cannot be generic",
            ),
            (
                "name = \"x\"",
                "fn f(msg: Message) -> Result<(), E> { Ok(()) }",
                "#[on_message] takes no options",
            ),
        ] {
            let err = expand(attr, item).unwrap_err();
            assert!(err.contains(message), "{message:?} not in {err:?}");
        }
    }
}
