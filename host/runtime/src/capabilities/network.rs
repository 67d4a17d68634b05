//! Raw network access through `wasi:sockets` (grant: `network`).
//!
//! Without the grant a component that imports `wasi:sockets` is rejected at load, and an
//! instance cannot create sockets or resolve names. With it, the instance may open TCP/UDP
//! sockets and resolve names, except to blocked networks (link-local and cloud metadata
//! addresses), so a granted plugin cannot be turned against the host's own network. Every
//! bind and connect checks the grant again, so a grant revoked meanwhile holds at once.

use std::net::{IpAddr, SocketAddr};

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

use super::CallState;
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
    fn link(&self, _linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        // Linked as part of WASI (see `wasi.rs`); access is decided per instance below.
        Ok(())
    }
    fn prepare(&self, grants: &GrantCheck, wasi: &mut WasiCtxBuilder) {
        // Without the grant WASI refuses to create sockets or look names up at all.
        let granted = grants.is_granted("network");
        wasi.allow_tcp(granted)
            .allow_udp(granted)
            .allow_ip_name_lookup(granted);
        // With it, every bind and connect is checked again: against the grant as it stands
        // then (it may have been revoked since the instance started) and against the
        // blocked networks. Denials go to the job log.
        let grants = grants.clone();
        wasi.socket_addr_check(move |addr, addr_use| {
            let allowed = if grants.require("network").is_err() {
                false
            } else {
                // Binding a local address (wasi-libc binds 0.0.0.0:0 before a connect) is
                // fine; only destinations are checked.
                match addr_use {
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => true,
                    _ if is_blocked(addr) => {
                        grants.deny(
                            "network",
                            &format!(
                                "connection to {addr} denied: link-local and cloud metadata \
                                 addresses are never allowed"
                            ),
                        );
                        false
                    }
                    _ => true,
                }
            };
            Box::pin(async move { allowed })
        });
    }
}

/// Destinations no plugin may reach: link-local addresses, which include the cloud metadata
/// service at 169.254.169.254.
pub fn is_blocked(addr: SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => {
            (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_are_blocked() {
        for addr in [
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[::ffff:169.254.169.254]:80",
        ] {
            assert!(is_blocked(addr.parse().unwrap()), "{addr}");
        }
        for addr in ["127.0.0.1:8080", "10.1.2.3:443", "[::1]:80"] {
            assert!(!is_blocked(addr.parse().unwrap()), "{addr}");
        }
    }
}
