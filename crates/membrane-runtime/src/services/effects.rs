//! The effects service: a module asks its host to do something in the world
//! (`emit(kind, payload)`); an [`EffectHandler`] the application registers does it or
//! refuses.

use crate::error::HostError;
use membrane_types::ErrorCode;

/// The longest effect kind, in bytes.
pub const MAX_EFFECT_KIND_LEN: usize = 256;

/// An effect a module emitted, as an [`EffectHandler`] receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Effect<'a> {
    /// The module's name in its runtime.
    pub module: &'a str,
    /// The request of the call that emitted it (0: a lifecycle hook).
    pub request_id: u64,
    /// What kind of effect (the application's vocabulary, at most
    /// [`MAX_EFFECT_KIND_LEN`] bytes).
    pub kind: &'a str,
    /// Its data, as the module wrote it.
    pub payload: &'a [u8],
}

/// Does (or refuses) the effects a runtime's modules emit. Called on the thread of the
/// call that emits, while the guest waits. Its error reaches the guest as it is.
///
/// A closure `Fn(&Effect<'_>) -> Result<(), HostError>` is one.
pub trait EffectHandler: Send + Sync + 'static {
    /// Handles one effect.
    fn handle(&self, effect: &Effect<'_>) -> Result<(), HostError>;
}

impl<F> EffectHandler for F
where
    F: Fn(&Effect<'_>) -> Result<(), HostError> + Send + Sync + 'static,
{
    fn handle(&self, effect: &Effect<'_>) -> Result<(), HostError> {
        self(effect)
    }
}

/// The default [`EffectHandler`]: refuses every effect with `ErrorCode::DENIED` (the
/// application has registered no handler).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEffects;

impl EffectHandler for NoEffects {
    fn handle(&self, effect: &Effect<'_>) -> Result<(), HostError> {
        Err(HostError::new(
            ErrorCode::DENIED,
            format!(
                "effect `{}` refused: the host registered no effect handler",
                effect.kind
            ),
        ))
    }
}
