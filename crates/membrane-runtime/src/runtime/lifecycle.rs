//! The lifecycle hooks in the runtime (`docs/runtime.md`, "Lifecycle"): every instance
//! is started before it serves a call, and stopped when the runtime drops it, unless a
//! failure poisoned it. Hooks are guest code: both run outside every lock, on an
//! instance no one else holds.

use std::sync::Arc;

use super::spec::Stats;
use crate::error::Result;
use crate::executor::{GuestInstance, Hook, Instantiator};

/// Makes the instances of a module version: each one started, a failed start counted
/// in the module's `hook_failures` (and the instance dropped, without stop).
pub(super) struct Starting {
    make: Box<dyn Instantiator>,
    stats: Arc<Stats>,
}

impl Starting {
    /// Starts what `make` makes, counting failures in `stats`.
    pub(super) fn new(make: Box<dyn Instantiator>, stats: Arc<Stats>) -> Starting {
        Starting { make, stats }
    }
}

impl Instantiator for Starting {
    fn instantiate(&self) -> Result<Box<dyn GuestInstance>> {
        let mut instance = self.make.instantiate()?;
        match instance.run_hook(Hook::Start) {
            Ok(()) => Ok(instance),
            Err(e) => {
                self.stats.hook_failed();
                Err(e)
            }
        }
    }
}

/// Runs the stop hook of a started instance that the runtime drops (and drops it),
/// unless a failure poisoned it: a trapped instance runs no more code. A failed stop is
/// logged and counted in the module's `hook_failures`, never returned.
///
/// Call it outside every lock: the hook is guest code.
pub(super) fn stop(mut instance: Box<dyn GuestInstance>, module: &str, stats: &Stats) {
    if instance.is_poisoned() {
        return;
    }
    if let Err(e) = instance.run_hook(Hook::Stop) {
        stats.hook_failed();
        tracing::warn!(module, error = %e, "the stop hook of an instance failed");
    }
}
