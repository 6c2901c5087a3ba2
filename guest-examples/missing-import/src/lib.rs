//! A component importing an interface (`demo:needy/host`) and a function (`notify`)
//! that no host provides (`wit/needy.wit`): the host refuses to instantiate it, naming
//! both. Built with wit-bindgen; `cargo xtask build-guests` makes the component.

/// The bindings wit-bindgen generates from `wit/needy.wit` (undocumented where the WIT is).
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "needy",
        path: "wit/needy.wit",
    });
}

use bindings::Guest;

/// The component.
struct Needy;

impl Guest for Needy {
    fn greet(name: String) -> String {
        bindings::demo::needy::host::log(&name);
        bindings::notify(1);
        format!("hello, {name}")
    }
}

bindings::export!(Needy with_types_in bindings);
