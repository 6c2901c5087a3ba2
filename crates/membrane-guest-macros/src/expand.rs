//! Expansion of `#[export]`, as a plain function over token streams.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type};

/// Expands `#[export(attr)] item`.
pub(crate) fn export(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let func: ItemFn = syn::parse2(item)?;
    let export_name = export_name(attr, &func)?;
    check_signature(&func)?;
    let input_ty: Type = match func.sig.inputs.first() {
        None => syn::parse_quote!(()),
        Some(FnArg::Typed(arg)) => (*arg.ty).clone(),
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                "#[export] functions cannot take `self`",
            ));
        }
    };
    let ident = &func.sig.ident;
    let shim = format_ident!("__membrane_export_{}", ident);
    let call = if func.sig.inputs.is_empty() {
        quote!(|(): ()| #ident())
    } else {
        quote!(#ident)
    };
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[cfg(target_arch = "wasm32")]
        #[unsafe(export_name = #export_name)]
        pub extern "C" fn #shim(ptr: u32, len: u32) -> u64 {
            ::membrane_guest::__rt::export_typed::<#input_ty, _, _>(ptr, len, #call)
        }
    })
}

/// The export name: `name = "..."` from the attribute, else the function's name.
fn export_name(attr: TokenStream, func: &ItemFn) -> syn::Result<LitStr> {
    let default = LitStr::new(&func.sig.ident.to_string(), func.sig.ident.span());
    if attr.is_empty() {
        return check_name(default);
    }
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse::<LitStr>()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[export] option; expected `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    check_name(name.unwrap_or(default))
}

fn check_name(name: LitStr) -> syn::Result<LitStr> {
    let value = name.value();
    if value.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            "the export name cannot be empty",
        ));
    }
    if value.starts_with("__") {
        return Err(syn::Error::new(
            name.span(),
            "export names starting with `__` are reserved for the membrane ABI",
        ));
    }
    Ok(name)
}

/// One input at most, a `Result` output, no generics, not async, not unsafe.
fn check_signature(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    if let Some(asyncness) = sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "#[export] functions cannot be async",
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span(),
            "#[export] functions cannot be unsafe",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[export] functions cannot be generic",
        ));
    }
    if sig.inputs.len() > 1 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "#[export] functions take one input (use a tuple or a struct for more)",
        ));
    }
    match &sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => Ok(()),
        ReturnType::Type(_, ty) => Err(syn::Error::new(
            ty.span(),
            "#[export] functions return `Result<O, E>`",
        )),
        ReturnType::Default => Err(syn::Error::new(
            Span::call_site(),
            "#[export] functions return `Result<O, E>`",
        )),
    }
}

/// Whether the type's last path segment is `Result` (any `Result` alias with two
/// parameters works; the compiler checks the rest).
fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: &str, item: &str) -> Result<String, String> {
        export(attr.parse().unwrap(), item.parse().unwrap())
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    fn check_ok(attr: &str, item: &str, must_contain: &[&str]) {
        let out = expand(attr, item).unwrap();
        for needle in must_contain {
            assert!(out.contains(needle), "{needle:?} not in {out}");
        }
    }

    fn check_err(attr: &str, item: &str, message: &str) {
        let err = expand(attr, item).unwrap_err();
        assert!(err.contains(message), "{message:?} not in {err:?}");
    }

    #[test]
    fn exports_under_the_function_name() {
        check_ok(
            "",
            "fn add(x: (u32, u32)) -> Result<u32, Error> { Ok(x.0 + x.1) }",
            &[
                "export_name = \"add\"",
                "fn __membrane_export_add (ptr : u32 , len : u32) -> u64",
                "export_typed :: < (u32 , u32) , _ , _ > (ptr , len , add)",
                "fn add (x : (u32 , u32))",
            ],
        );
    }

    #[test]
    fn renames_with_name_option() {
        check_ok(
            "name = \"sum\"",
            "fn add(x: u32) -> Result<u32, E> { Ok(x) }",
            &["export_name = \"sum\""],
        );
    }

    #[test]
    fn no_input_takes_unit() {
        check_ok(
            "",
            "fn ping() -> Result<u32, E> { Ok(1) }",
            &["export_typed :: < () , _ , _ >", "| () : () | ping ()"],
        );
    }

    #[test]
    fn rejects_bad_signatures() {
        check_err(
            "",
            "fn f(a: u32, b: u32) -> Result<u32, E> { Ok(a) }",
            "take one input",
        );
        check_err("", "fn f(a: u32) -> u32 { a }", "return `Result<O, E>`");
        check_err("", "fn f(a: u32) { }", "return `Result<O, E>`");
        check_err(
            "",
            "async fn f(a: u32) -> Result<u32, E> { Ok(a) }",
            "cannot be async",
        );
        check_err(
            "",
            "unsafe fn f(a: u32) -> Result<u32, E> { Ok(a) }",
            "cannot be unsafe",
        );
        check_err(
            "",
            "fn f<T>(a: T) -> Result<u32, E> { Ok(1) }",
            "cannot be generic",
        );
    }

    #[test]
    fn rejects_bad_options() {
        check_err(
            "nom = \"x\"",
            "fn f(a: u32) -> Result<u32, E> { Ok(a) }",
            "unknown #[export] option",
        );
        check_err(
            "name = \"__x\"",
            "fn f(a: u32) -> Result<u32, E> { Ok(a) }",
            "reserved",
        );
        check_err(
            "name = \"\"",
            "fn f(a: u32) -> Result<u32, E> { Ok(a) }",
            "cannot be empty",
        );
    }
}
