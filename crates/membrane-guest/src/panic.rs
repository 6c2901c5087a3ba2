//! Sending guest panic messages to the host.

use core::fmt::{self, Write};
use membrane_types::MAX_PANIC_MESSAGE;

/// Sends a panic's message to the host (intrinsic `membrane.panic`); the host reports
/// the trap that follows as a guest panic carrying this message.
///
/// Formats into a fixed buffer (no allocation: a panic may come from memory
/// exhaustion) and truncates at the host's limit. With the `std` feature the exports
/// install a hook calling this; a `no_std` module calls it from its `#[panic_handler]`.
pub fn report_panic(info: &dyn fmt::Display) {
    let mut message = Truncating(heapless::String::new());
    let _ = write!(message, "{info}");
    crate::sys::panic_message(&message.0);
}

/// A string that keeps what fits and drops the rest, on a character boundary.
struct Truncating(heapless::String<MAX_PANIC_MESSAGE>);

impl Write for Truncating {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Installs a std panic hook that reports panic messages to the host. Idempotent and
/// cheap after the first call; exports call it on entry, so modules rarely need to.
///
/// Off wasm32 it does nothing, so native test runs keep the default hook's output.
#[cfg(feature = "std")]
pub fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::state::PANIC_HOOK_INSTALLED as INSTALLED;
        use core::sync::atomic::Ordering;
        if !INSTALLED.load(Ordering::Relaxed) && !INSTALLED.swap(true, Ordering::Relaxed) {
            std::panic::set_hook(alloc::boxed::Box::new(|info| report_panic(info)));
        }
    }
}
