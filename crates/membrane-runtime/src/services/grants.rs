//! What a module may use ([`Grants`]), what each service import needs ([`Grant`],
//! [`ServiceImport`]), and the check that refuses a module importing what it was not
//! granted.

use std::fmt;

use membrane_types::{MODULES_IMPORT, RUNTIME_MODULE, SERVICE_IMPORTS, SERVICES_MODULE};

use crate::error::{ErrorKind, Result};

/// One capability a host grants a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Grant {
    /// Log lines (`membrane_guest::log`).
    Log,
    /// Wall and monotonic clocks (`membrane_guest::clock`).
    Clock,
    /// Random bytes (`membrane_guest::random`).
    Random,
    /// Effects handed to the host's handler (`membrane_guest::effects`).
    Effects,
    /// Debug assertions and breakpoints (`membrane_guest::debug`).
    Debug,
    /// Its own key-value namespace (`membrane_guest::kv`).
    Kv,
    /// The message bus (`membrane_guest::bus`): a queue of its own, sending,
    /// broadcasting.
    Bus,
    /// The list of the runtime's modules (`membrane_guest::modules`).
    Discover,
}

impl Grant {
    /// Every grant.
    pub const ALL: [Grant; 8] = [
        Grant::Log,
        Grant::Clock,
        Grant::Random,
        Grant::Effects,
        Grant::Debug,
        Grant::Kv,
        Grant::Bus,
        Grant::Discover,
    ];

    /// Its name, as [`Grants`]' builder method and `docs/abi.md` §10 spell it.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Log => "log",
            Grant::Clock => "clock",
            Grant::Random => "random",
            Grant::Effects => "effects",
            Grant::Debug => "debug",
            Grant::Kv => "kv",
            Grant::Bus => "bus",
            Grant::Discover => "discover",
        }
    }

    #[cfg(test)]
    fn from_name(name: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.name() == name)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a module may use, given when it is added
/// ([`ModuleSpec::grants`](crate::ModuleSpec::grants)). Nothing by default.
///
/// ```
/// use membrane_runtime::{Grant, Grants};
///
/// let grants = Grants::none().log().clock().kv("orders").bus();
/// assert!(grants.allows(Grant::Log));
/// assert!(!grants.allows(Grant::Random));
/// assert_eq!(grants.kv_namespace(), Some("orders"));
/// assert_eq!(grants.to_string(), "log, clock, kv(orders), bus");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Grants {
    granted: [bool; Grant::ALL.len()],
    kv: Option<String>,
}

impl Grants {
    /// Nothing granted.
    pub fn none() -> Grants {
        Grants::default()
    }

    fn with(mut self, grant: Grant) -> Grants {
        self.granted[grant as usize] = true;
        self
    }

    /// Adds log lines.
    #[must_use]
    pub fn log(self) -> Grants {
        self.with(Grant::Log)
    }

    /// Adds the clocks.
    #[must_use]
    pub fn clock(self) -> Grants {
        self.with(Grant::Clock)
    }

    /// Adds random bytes.
    #[must_use]
    pub fn random(self) -> Grants {
        self.with(Grant::Random)
    }

    /// Adds effects.
    #[must_use]
    pub fn effects(self) -> Grants {
        self.with(Grant::Effects)
    }

    /// Adds debug assertions and breakpoints.
    #[must_use]
    pub fn debug(self) -> Grants {
        self.with(Grant::Debug)
    }

    /// Adds the key-value namespace `namespace` as the module's own: every key it
    /// reads or writes is in that namespace, and no other module of the runtime may be
    /// granted it while the module is in the runtime. Naming it (rather than deriving
    /// it from the module's name) keeps a module's data when it is added under another
    /// name, and after a restart.
    #[must_use]
    pub fn kv(mut self, namespace: impl Into<String>) -> Grants {
        self.kv = Some(namespace.into());
        self.with(Grant::Kv)
    }

    /// Adds the message bus.
    #[must_use]
    pub fn bus(self) -> Grants {
        self.with(Grant::Bus)
    }

    /// Adds the list of the runtime's modules.
    #[must_use]
    pub fn discover(self) -> Grants {
        self.with(Grant::Discover)
    }

    /// Whether `grant` is granted.
    #[inline]
    pub fn allows(&self, grant: Grant) -> bool {
        self.granted[grant as usize]
    }

    /// The key-value namespace granted, if any.
    pub fn kv_namespace(&self) -> Option<&str> {
        self.kv.as_deref()
    }
}

/// The grants, comma-separated (`none` for none).
impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for grant in Grant::ALL.into_iter().filter(|g| self.allows(*g)) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match (grant, &self.kv) {
                (Grant::Kv, Some(namespace)) => write!(f, "kv({namespace})")?,
                _ => f.write_str(grant.name())?,
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// An import of `membrane_services` (`docs/abi.md` §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceImport {
    /// `log`.
    Log,
    /// `clock_wall`.
    ClockWall,
    /// `clock_monotonic`.
    ClockMonotonic,
    /// `random`.
    Random,
    /// `emit`.
    Emit,
    /// `assert_failed`.
    AssertFailed,
    /// `breakpoint`.
    Breakpoint,
    /// `kv_get`.
    KvGet,
    /// `kv_put`.
    KvPut,
    /// `kv_delete`.
    KvDelete,
    /// `kv_scan`.
    KvScan,
    /// `bus_send`.
    BusSend,
    /// `bus_broadcast`.
    BusBroadcast,
    /// `bus_recv`.
    BusRecv,
    /// `bus_pending`.
    BusPending,
}

impl ServiceImport {
    /// Every import, in the order of `membrane_types::SERVICE_IMPORTS`.
    pub const ALL: [ServiceImport; 15] = [
        ServiceImport::Log,
        ServiceImport::ClockWall,
        ServiceImport::ClockMonotonic,
        ServiceImport::Random,
        ServiceImport::Emit,
        ServiceImport::AssertFailed,
        ServiceImport::Breakpoint,
        ServiceImport::KvGet,
        ServiceImport::KvPut,
        ServiceImport::KvDelete,
        ServiceImport::KvScan,
        ServiceImport::BusSend,
        ServiceImport::BusBroadcast,
        ServiceImport::BusRecv,
        ServiceImport::BusPending,
    ];

    /// Its import name.
    pub fn name(self) -> &'static str {
        SERVICE_IMPORTS[self as usize].0
    }

    /// The grant it needs.
    pub fn grant(self) -> Grant {
        match self {
            ServiceImport::Log => Grant::Log,
            ServiceImport::ClockWall | ServiceImport::ClockMonotonic => Grant::Clock,
            ServiceImport::Random => Grant::Random,
            ServiceImport::Emit => Grant::Effects,
            ServiceImport::AssertFailed | ServiceImport::Breakpoint => Grant::Debug,
            ServiceImport::KvGet
            | ServiceImport::KvPut
            | ServiceImport::KvDelete
            | ServiceImport::KvScan => Grant::Kv,
            ServiceImport::BusSend
            | ServiceImport::BusBroadcast
            | ServiceImport::BusRecv
            | ServiceImport::BusPending => Grant::Bus,
        }
    }

    /// The import of this name, if there is one.
    pub fn from_name(name: &str) -> Option<ServiceImport> {
        ServiceImport::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The grant an import `module::name` needs, if it needs one.
fn required(module: &str, name: &str) -> Option<Grant> {
    match module {
        SERVICES_MODULE => ServiceImport::from_name(name).map(ServiceImport::grant),
        RUNTIME_MODULE if name == MODULES_IMPORT => Some(Grant::Discover),
        _ => None,
    }
}

/// Refuses the module `module` if one of its `imports` needs a grant `grants` does not
/// give: [`ErrorKind::NotGranted`] naming the first such import and its grant.
pub(crate) fn check_imports<'a>(
    module: &str,
    imports: impl IntoIterator<Item = (&'a str, &'a str)>,
    grants: &Grants,
) -> Result<()> {
    for (from, name) in imports {
        if let Some(grant) = required(from, name)
            && !grants.allows(grant)
        {
            return Err(ErrorKind::NotGranted {
                module: module.to_string(),
                import: format!("{from}.{name}"),
                grant: grant.name(),
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_match_the_wire_table() {
        for (import, (name, grant)) in ServiceImport::ALL.into_iter().zip(SERVICE_IMPORTS) {
            assert_eq!(import.name(), name);
            assert_eq!(import.grant(), Grant::from_name(grant).unwrap(), "{name}");
            assert_eq!(ServiceImport::from_name(name), Some(import));
        }
        assert_eq!(ServiceImport::from_name("nope"), None);
    }

    #[test]
    fn nothing_is_granted_by_default_and_each_grant_is_its_own() {
        let none = Grants::none();
        assert!(Grant::ALL.iter().all(|g| !none.allows(*g)));
        assert_eq!(none.to_string(), "none");
        let all = Grants::none()
            .log()
            .clock()
            .random()
            .effects()
            .debug()
            .kv("ns")
            .bus()
            .discover();
        assert!(Grant::ALL.iter().all(|g| all.allows(*g)));
        assert_eq!(
            all.to_string(),
            "log, clock, random, effects, debug, kv(ns), bus, discover"
        );
        let only_bus = Grants::none().bus();
        for g in Grant::ALL {
            assert_eq!(only_bus.allows(g), g == Grant::Bus);
        }
    }

    #[test]
    fn every_import_is_refused_without_its_grant() {
        for import in ServiceImport::ALL {
            let imports = [(SERVICES_MODULE, import.name())];
            let e = check_imports("m", imports, &Grants::none()).unwrap_err();
            match e.kind() {
                ErrorKind::NotGranted {
                    module,
                    import: named,
                    grant,
                } => {
                    assert_eq!(module, "m");
                    assert_eq!(named, &format!("membrane_services.{}", import.name()));
                    assert_eq!(*grant, import.grant().name());
                }
                other => panic!("{other:?}"),
            }
            let mut grants = Grants::none();
            grants.granted[import.grant() as usize] = true;
            check_imports("m", imports, &grants).unwrap();
        }
        let discover = [(RUNTIME_MODULE, MODULES_IMPORT)];
        assert!(check_imports("m", discover, &Grants::none()).is_err());
        check_imports("m", discover, &Grants::none().discover()).unwrap();
        // Calls between modules, host functions and intrinsics need no grant.
        let free = [
            (RUNTIME_MODULE, "call"),
            (RUNTIME_MODULE, "context"),
            ("membrane_host", "anything"),
            ("membrane", "crc32"),
        ];
        check_imports("m", free, &Grants::none()).unwrap();
    }
}
