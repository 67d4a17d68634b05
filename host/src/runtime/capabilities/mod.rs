//! Capabilities: what a plugin can reach beyond its own memory.
//!
//! Each capability is one module with up to three steps, in the manner of Spin's factors:
//! - *link*: add its WIT bindings to the process-wide [`Linker`] once;
//! - *check*: name the WIT interfaces it provides, so a component importing one of them is
//!   rejected at load unless the plugin's config grants the capability (deny by default);
//! - *prepare*: shape the per-instance WASI context from the plugin's grant.
//!
//! A new capability is a new module plus one line in [`ALL`].

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use super::instance::JobState;

pub mod host;
pub mod http;
pub mod network;
pub mod process;
pub mod wasi;

/// One capability a plugin may be given.
pub trait Capability: Send + Sync + 'static {
    /// Name used in grants (`plugins.<id>.grants = ["<name>"]`).
    fn name(&self) -> &'static str;
    /// WIT interface name prefixes this capability provides, e.g. `"wasi:sockets/"`.
    fn interfaces(&self) -> &'static [&'static str];
    /// Whether every plugin has it without a grant.
    fn always_granted(&self) -> bool {
        false
    }
    /// Adds the capability's host functions to the linker.
    fn link(&self, linker: &mut Linker<JobState>) -> wasmtime::Result<()>;
    /// Configures a fresh instance's WASI context; `granted` tells whether the plugin has it.
    fn prepare(&self, _granted: bool, _wasi: &mut WasiCtxBuilder) {}
}

/// Every capability this host knows, in link order.
pub static ALL: &[&dyn Capability] = &[
    &host::HostApi,
    &wasi::WasiBase,
    &network::Network,
    &http::Http,
    &process::Process,
];

/// The capability providing WIT interface `interface` (e.g. `wasi:sockets/tcp@0.2.3`).
pub fn providing(interface: &str) -> Option<&'static dyn Capability> {
    ALL.iter()
        .copied()
        .find(|cap| cap.interfaces().iter().any(|p| interface.starts_with(p)))
}

/// True if `name` is a capability that can appear in a grant.
pub fn is_grantable(name: &str) -> bool {
    ALL.iter()
        .any(|cap| !cap.always_granted() && cap.name() == name)
}

/// Names of the capabilities that can appear in a grant, for error messages.
pub fn grantable_names() -> Vec<&'static str> {
    ALL.iter()
        .filter(|cap| !cap.always_granted())
        .map(|cap| cap.name())
        .collect()
}

/// Links every capability into `linker`.
pub fn link_all(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    for cap in ALL {
        cap.link(linker)?;
    }
    Ok(())
}
