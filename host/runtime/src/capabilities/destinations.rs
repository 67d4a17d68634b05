//! Where a plugin's connections may go, whichever capability opens them (`network`, `http`).
//!
//! Granting sockets or HTTP must not grant the host. Three kinds of destination are refused:
//! - **this node's own services** (its API listeners and its Redis, see
//!   [`ProtectedServices`]): always, whatever the config says;
//! - **link-local and cloud metadata addresses** (169.254.0.0/16, fe80::/10,
//!   100.100.100.200, fd00:ec2::254): always;
//! - **loopback, unspecified and private addresses** (127.0.0.0/8, ::1, 0.0.0.0/8,
//!   10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7, multicast):
//!   unless the operator opts in with `plugins.<id>.allow_private = ["10.0.0.0/8"]`, or, for
//!   `http`, names the literal address in `allowed_hosts` (`http://127.0.0.1:9000`).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are judged as the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// Parses a `plugins.<id>.allow_private` entry: a network (`10.0.0.0/8`, `fd00::/8`) or
/// one address (`127.0.0.1`).
pub fn parse_network(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{entry:?} is not an address or a network such as 10.0.0.0/8"))
}

/// The addresses of this node's own services (API listeners, Redis), which no plugin may
/// reach. The node fills it once it has bound its ports; shared by every call.
#[derive(Debug, Default)]
pub struct ProtectedServices(RwLock<Arc<[SocketAddr]>>);

impl ProtectedServices {
    /// Replaces the protected addresses. A listener on an unspecified address
    /// (`0.0.0.0:8080`) protects its port on every loopback and private address.
    pub fn set(&self, addrs: Vec<SocketAddr>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = addrs.into();
    }

    /// The protected addresses.
    pub fn get(&self) -> Arc<[SocketAddr]> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn covers(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        self.get().iter().any(|service| {
            if service.port() != addr.port() {
                return false;
            }
            let own = canonical(service.ip());
            // A service on this machine (listening on 0.0.0.0, on loopback or on one of
            // the machine's addresses) answers on its port at every local address: the
            // port is protected on all of them, not only at the address it was named by.
            // One on 0.0.0.0 is kept from that port on every private address as well: the
            // machine may be reached through addresses it does not hold (NAT, port
            // forwarding).
            let on_this_machine = own.is_unspecified() || own.is_loopback() || is_local(own);
            own == ip
                || (on_this_machine && (ip.is_loopback() || is_local(ip)))
                || (own.is_unspecified() && kind(ip) != Kind::Public)
        })
    }
}

/// True if `ip` is one of this machine's own addresses: binding a socket to it succeeds
/// only then. A service listening on `0.0.0.0` answers on every one of them, public ones
/// included.
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// What kind of address a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Link-local or a cloud metadata endpoint: never reachable.
    Metadata,
    /// Loopback, unspecified, private, shared (CGNAT) or multicast: reachable with an opt-in.
    Private,
    /// Anything else.
    Public,
}

/// An IPv6 address that carries an IPv4 one as that IPv4 address: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, not `::` or `::1`) and NAT64's
/// well-known prefix (`64:ff9b::a.b.c.d`, which a DNS64 network routes to a.b.c.d).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let compatible = s[..6] == [0; 6] && u32::from(embedded) > 1;
    if nat64 || compatible {
        IpAddr::V4(embedded)
    } else {
        ip
    }
}

fn kind(ip: IpAddr) -> Kind {
    match canonical(ip) {
        IpAddr::V4(v4) => kind_v4(v4),
        IpAddr::V6(v6) => kind_v6(v6),
    }
}

fn kind_v4(ip: Ipv4Addr) -> Kind {
    const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() || ip == ALIBABA_METADATA {
        Kind::Metadata
    } else if ip.is_loopback()
        || ip.is_private()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || ip.is_multicast()
        || ip.is_broadcast()
    {
        Kind::Private
    } else {
        Kind::Public
    }
}

fn kind_v6(ip: Ipv6Addr) -> Kind {
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    let segments = ip.segments();
    let first = segments[0];
    // Translation prefixes that can lead anywhere, private networks included: the local-use
    // NAT64 prefix (64:ff9b:1::/48) and 6to4 (2002::/16).
    let translated = segments[..3] == [0x64, 0xff9b, 1] || first == 0x2002;
    if (first & 0xffc0) == 0xfe80 || ip == AWS_METADATA {
        Kind::Metadata
    } else if ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || ip.is_multicast()
        || translated
    {
        Kind::Private
    } else {
        Kind::Public
    }
}

/// The destination policy of one plugin.
#[derive(Debug, Clone)]
pub struct Destinations {
    plugin: Arc<str>,
    allow_private: Arc<[IpNet]>,
    protected: Arc<ProtectedServices>,
}

impl Destinations {
    /// The policy of `plugin`, whose `allow_private` entries were parsed with
    /// [`parse_network`], against the node's `protected` services.
    pub fn new(
        plugin: &str,
        allow_private: Arc<[IpNet]>,
        protected: Arc<ProtectedServices>,
    ) -> Self {
        Destinations {
            plugin: plugin.into(),
            allow_private,
            protected,
        }
    }

    /// Why a connection to `addr` is refused, if it is (the reason alone; callers say what
    /// was refused). `named` is true when the operator named this very address in the
    /// plugin's config (an `allowed_hosts` literal), which opts it in like `allow_private`.
    pub fn refusal(&self, addr: SocketAddr, named: bool) -> Option<String> {
        if self.protected.covers(addr) {
            return Some(
                "it is one of this node's own services (its APIs or its Redis), which plugins \
                 never reach"
                    .into(),
            );
        }
        let ip = canonical(addr.ip());
        if ip.is_unspecified() {
            // Connecting to 0.0.0.0 or :: reaches this machine itself.
            return Some("the unspecified address (0.0.0.0, ::) is this machine itself".into());
        }
        match kind(ip) {
            Kind::Metadata => {
                Some("link-local and cloud metadata addresses are never allowed".into())
            }
            Kind::Private if !named && !self.allow_private.iter().any(|n| n.contains(&ip)) => {
                Some(format!(
                    "loopback and private addresses need plugins.{}.allow_private",
                    self.plugin
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], protected: &[&str]) -> Destinations {
        let services = Arc::new(ProtectedServices::default());
        services.set(protected.iter().map(|a| a.parse().unwrap()).collect());
        let nets = allow.iter().map(|n| parse_network(n).unwrap()).collect();
        Destinations::new("p", nets, services)
    }

    fn refused(policy: &Destinations, addr: &str) -> Option<String> {
        policy.refusal(addr.parse().unwrap(), false)
    }

    #[test]
    fn metadata_and_link_local_are_never_reachable() {
        let open = policy(&["0.0.0.0/0", "::/0"], &[]);
        for addr in [
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[::ffff:169.254.169.254]:80",
            "100.100.100.200:80",
            "[fd00:ec2::254]:80",
            "[64:ff9b::a9fe:a9fe]:80",
        ] {
            let why = refused(&open, addr).unwrap_or_else(|| panic!("{addr} allowed"));
            assert!(why.contains("cloud metadata"), "{why}");
            assert!(
                open.refusal(addr.parse().unwrap(), true).is_some(),
                "{addr}"
            );
        }
    }

    #[test]
    fn loopback_and_private_need_an_opt_in() {
        let closed = policy(&[], &[]);
        for addr in [
            "127.0.0.1:6379",
            "127.1.2.3:80",
            "10.1.2.3:443",
            "172.16.0.1:80",
            "192.168.1.1:80",
            "100.64.0.1:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::127.0.0.1]:80",
            "[64:ff9b::a00:5]:80",
            "[64:ff9b:1::1]:80",
            "[2002:a00:5::1]:80",
            "[fd12::1]:80",
            "224.0.0.1:5353",
        ] {
            let why = refused(&closed, addr).unwrap_or_else(|| panic!("{addr} allowed"));
            assert!(why.contains("plugins.p.allow_private"), "{why}");
        }
        assert!(refused(&closed, "93.184.216.34:443").is_none());
        assert!(refused(&closed, "[2606:4700::1]:443").is_none());
        let opted = policy(&["10.0.0.0/8", "127.0.0.1"], &[]);
        assert!(refused(&opted, "10.9.9.9:80").is_none());
        assert!(refused(&opted, "127.0.0.1:80").is_none());
        assert!(refused(&opted, "[::ffff:127.0.0.1]:80").is_none());
        assert!(refused(&opted, "127.0.0.2:80").is_some());
        assert!(refused(&opted, "192.168.0.1:80").is_some());
        assert!(
            closed
                .refusal("127.0.0.1:9000".parse().unwrap(), true)
                .is_none()
        );
    }

    #[test]
    fn the_nodes_own_services_are_never_reachable() {
        let node = policy(&["0.0.0.0/0"], &["127.0.0.1:6379", "0.0.0.0:8080"]);
        for addr in [
            "127.0.0.1:6379",
            "[::ffff:127.0.0.1]:6379",
            "127.0.0.1:8080",
            "10.0.0.5:8080",
        ] {
            let why = refused(&node, addr).unwrap_or_else(|| panic!("{addr} allowed"));
            assert!(why.contains("own services"), "{why}");
            assert!(node.refusal(addr.parse().unwrap(), true).is_some());
        }
        assert!(refused(&node, "127.0.0.1:6380").is_none());
        // A service on 0.0.0.0 answers on the machine's public addresses too.
        let public = policy(&[], &["0.0.0.0:8080"]);
        assert!(
            refused(&public, "93.184.216.34:8080").is_none(),
            "not this machine"
        );
    }

    #[test]
    fn local_addresses_are_told_by_binding() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(!is_local("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn bad_networks_say_why() {
        assert!(parse_network("10.0.0.0/8").is_ok());
        assert!(parse_network("fd00::/8").is_ok());
        assert!(parse_network("127.0.0.1").is_ok());
        let err = parse_network("10.0.0.0/33").unwrap_err();
        assert!(err.contains("10.0.0.0/8"), "{err}");
        assert!(parse_network("intranet").is_err());
    }
}
