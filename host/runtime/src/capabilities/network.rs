//! Raw network access through `wasi:sockets` (grant: `network`).
//!
//! Without the grant a component that imports `wasi:sockets` is rejected at load, and an
//! instance cannot create sockets or resolve names. With it, the instance may open TCP/UDP
//! sockets and resolve names, but connect and send only where [`Destinations`] allows: never
//! to this node's own services, link-local or cloud metadata addresses, and to loopback or
//! private networks only those `plugins.<id>.allow_private` names. Every bind and connect
//! checks the grant again, so a grant revoked meanwhile holds at once.

use jobhost_config::PluginConfig;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

use super::CallState;
use super::destinations::{Destinations, parse_network};
use super::{Capability, GrantCheck};

/// The `network` capability.
pub struct Network;

impl Capability for Network {
    fn name(&self) -> &'static str {
        "network"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:sockets/"]
    }
    fn check(&self, id: &str, plugin: &PluginConfig) -> Result<(), String> {
        // `allow_private` serves `http` as well; it is checked once, here.
        for entry in &plugin.allow_private {
            parse_network(entry).map_err(|e| format!("plugins.{id}.allow_private: {e}"))?;
        }
        Ok(())
    }
    fn link(&self, _linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        // Linked as part of WASI (see `wasi.rs`); access is decided per instance below.
        Ok(())
    }
    fn prepare(&self, grants: &GrantCheck, destinations: &Destinations, wasi: &mut WasiCtxBuilder) {
        // Without the grant WASI refuses to create sockets or look names up at all.
        let granted = grants.is_granted("network");
        wasi.allow_tcp(granted)
            .allow_udp(granted)
            .allow_ip_name_lookup(granted);
        // With it, every bind and connect is checked again: against the grant as it stands
        // then (it may have been revoked since the instance started) and against the
        // destination policy. Denials go to the job log.
        let grants = grants.clone();
        let destinations = destinations.clone();
        wasi.socket_addr_check(move |addr, addr_use| {
            let allowed = if grants.require("network").is_err() {
                false
            } else {
                match addr_use {
                    // Where the plugin's traffic goes is what is checked: its own end
                    // (bind, listen) and what comes in (accept, receive) reach nothing.
                    SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => {
                        match destinations.refusal(addr, false) {
                            Some(refusal) => {
                                grants.deny(
                                    "network",
                                    &format!("connection to {addr} denied: {refusal}"),
                                );
                                false
                            }
                            None => true,
                        }
                    }
                    _ => true,
                }
            };
            Box::pin(async move { allowed })
        });
    }
}
