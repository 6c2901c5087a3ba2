//! Expansion of `#[export]`, as a plain function over token streams.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, LitStr, ReturnType, Type};

/// Expands `#[export(attr)] item`.
pub(crate) fn export(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let func: ItemFn = syn::parse2(item)?;
    let export_name = export_name(attr, &func)?;
    let input = input(&func)?;
    check_signature("#[export]", &func, &input)?;
    Ok(with_shim(&func, &export_name, &input))
}

/// `func` followed by the wasm32 shim that exports it as `export_name`, taking its
/// input as `input` says. The caller checked the signature.
pub(crate) fn with_shim(func: &ItemFn, export_name: &LitStr, input: &Input<'_>) -> TokenStream {
    let ident = &func.sig.ident;
    let shim = format_ident!("__membrane_export_{}", ident);
    let run = match input {
        Input::Unit => quote! {
            ::membrane_guest::__rt::export_typed::<(), _, _>(ptr, len, |(): ()| #ident())
        },
        Input::Typed(input_ty) => quote! {
            ::membrane_guest::__rt::export_typed::<#input_ty, _, _>(ptr, len, #ident)
        },
        Input::Bytes => quote! {
            ::membrane_guest::__rt::export_bytes(ptr, len, #ident)
        },
    };
    quote! {
        #func

        #[doc(hidden)]
        #[cfg(target_arch = "wasm32")]
        #[unsafe(export_name = #export_name)]
        pub extern "C" fn #shim(ptr: u32, len: u32) -> u64 {
            #run
        }
    }
}

/// How an export takes its input.
pub(crate) enum Input<'f> {
    /// No parameter: the input is `()` (postcard), so an export without input is typed
    /// whatever it returns.
    Unit,
    /// A value deserialized from the payload (postcard).
    Typed(&'f Type),
    /// `&[u8]`: the payload itself, and bytes out.
    Bytes,
}

/// The function's input: its one parameter's type decides, `&[u8]` meaning bytes.
pub(crate) fn input(func: &ItemFn) -> syn::Result<Input<'_>> {
    let arg = match func.sig.inputs.first() {
        None => return Ok(Input::Unit),
        Some(FnArg::Typed(arg)) => arg,
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                "#[export] functions cannot take `self`",
            ));
        }
    };
    let Type::Reference(reference) = ungroup(&arg.ty) else {
        return Ok(Input::Typed(&arg.ty));
    };
    if !is_u8_slice(&reference.elem) {
        return Err(syn::Error::new(
            arg.ty.span(),
            "#[export] functions take their input by value (a type that implements \
             `Deserialize`) or as bytes, written `&[u8]`; not by reference",
        ));
    }
    if let Some(mutability) = reference.mutability {
        return Err(syn::Error::new(
            mutability.span(),
            "a bytes input is read-only: take `&[u8]`, not `&mut [u8]`",
        ));
    }
    if let Some(lifetime) = &reference.lifetime
        && lifetime.ident == "static"
    {
        return Err(syn::Error::new(
            lifetime.span(),
            "a bytes input lives for the call only: take `&[u8]`, not `&'static [u8]`",
        ));
    }
    Ok(Input::Bytes)
}

/// The type inside any invisible (macro) groups and parentheses.
pub(crate) fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => ungroup(&g.elem),
        Type::Paren(p) => ungroup(&p.elem),
        ty => ty,
    }
}

/// Whether `ty` is `[u8]` (`u8` may be written as a path ending in `u8`).
fn is_u8_slice(ty: &Type) -> bool {
    let Type::Slice(slice) = ungroup(ty) else {
        return false;
    };
    matches!(ungroup(&slice.elem), Type::Path(p)
        if p.qself.is_none()
            && p.path.segments.last().is_some_and(|s| s.ident == "u8" && s.arguments.is_empty()))
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

/// One input at most, a `Result` output, no generics (but lifetimes with a bytes input),
/// not async, not unsafe. `attribute` names the attribute as written, for the errors.
pub(crate) fn check_signature(
    attribute: &str,
    func: &ItemFn,
    input: &Input<'_>,
) -> syn::Result<()> {
    let sig = &func.sig;
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
    let lifetimes_only = sig
        .generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)));
    let allowed =
        sig.generics.params.is_empty() || (lifetimes_only && matches!(input, Input::Bytes));
    if !allowed {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("{attribute} functions cannot be generic"),
        ));
    }
    if sig.inputs.len() > 1 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            format!("{attribute} functions take one input (use a tuple or a struct for more)"),
        ));
    }
    match &sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => Ok(()),
        ReturnType::Type(_, ty) => Err(syn::Error::new(
            ty.span(),
            format!("{attribute} functions return `Result<O, E>`"),
        )),
        ReturnType::Default => Err(syn::Error::new(
            Span::call_site(),
            format!("{attribute} functions return `Result<O, E>`"),
        )),
    }
}

/// Whether the type's last path segment is `Result` (any `Result` alias with two
/// parameters works; the compiler checks the rest).
pub(crate) fn is_result(ty: &Type) -> bool {
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
    fn bytes_input_exports_bytes() {
        for item in [
            "fn echo(input: &[u8]) -> Result<&[u8], Error> { Ok(input) }",
            "fn echo<'a>(input: &'a [u8]) -> Result<&'a [u8], Error> { Ok(input) }",
            "fn echo(_: &[core::primitive::u8]) -> Result<Vec<u8>, Error> { Ok(Vec::new()) }",
            "fn echo(input: &([u8])) -> Result<&'static [u8], Error> { Ok(b\"\") }",
        ] {
            check_ok(
                "",
                item,
                &[
                    "export_name = \"echo\"",
                    "fn __membrane_export_echo (ptr : u32 , len : u32) -> u64",
                    "{ :: membrane_guest :: __rt :: export_bytes (ptr , len , echo) }",
                    "fn echo",
                ],
            );
        }
        check_ok(
            "name = \"bytes\"",
            "fn echo(input: &[u8]) -> Result<Vec<u8>, Error> { Ok(input.to_vec()) }",
            &["export_name = \"bytes\"", "export_bytes (ptr , len , echo)"],
        );
    }

    /// Only `&[u8]` selects bytes mode: other inputs, and no input whatever the output,
    /// are typed.
    #[test]
    fn other_inputs_stay_typed() {
        check_ok(
            "",
            "fn f(input: Vec<u8>) -> Result<Vec<u8>, E> { Ok(input) }",
            &["export_typed :: < Vec < u8 > , _ , _ > (ptr , len , f)"],
        );
        check_ok(
            "",
            "fn f() -> Result<Vec<u8>, E> { Ok(Vec::new()) }",
            &["export_typed :: < () , _ , _ >"],
        );
        check_ok(
            "",
            "fn f(input: [u8; 4]) -> Result<u8, E> { Ok(input[0]) }",
            &["export_typed :: < [u8 ; 4] , _ , _ >"],
        );
    }

    #[test]
    fn rejects_bad_bytes_inputs() {
        check_err(
            "",
            "fn f(input: &mut [u8]) -> Result<Vec<u8>, E> { Ok(input.to_vec()) }",
            "a bytes input is read-only: take `&[u8]`, not `&mut [u8]`",
        );
        check_err(
            "",
            "fn f(input: &'static [u8]) -> Result<Vec<u8>, E> { Ok(input.to_vec()) }",
            "not `&'static [u8]`",
        );
        for input in ["&str", "&Vec<u8>", "&[u16]", "&[u8; 4]", "&mut Order"] {
            check_err(
                "",
                &format!("fn f(input: {input}) -> Result<u32, E> {{ Ok(1) }}"),
                "or as bytes, written `&[u8]`; not by reference",
            );
        }
        check_err(
            "",
            "fn f<T>(input: &[u8]) -> Result<Vec<u8>, E> { Ok(input.to_vec()) }",
            "cannot be generic",
        );
        check_err(
            "",
            "fn f<'a>(input: u32) -> Result<&'a str, E> { Ok(\"\") }",
            "cannot be generic",
        );
        check_err(
            "",
            "fn f(a: &[u8], b: &[u8]) -> Result<Vec<u8>, E> { Ok(a.to_vec()) }",
            "take one input",
        );
        check_err(
            "",
            "fn f(input: &[u8]) -> Vec<u8> { input.to_vec() }",
            "return `Result<O, E>`",
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
