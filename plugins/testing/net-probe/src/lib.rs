//! `net-probe`: opens a TCP connection to the IPv4 `ip:port` in its spec and writes
//! `probe\n`. It imports `wasi:sockets`, so it needs the `network` grant to load at all.

use std::net::SocketAddrV4;

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasi::sockets::tcp_create_socket::create_tcp_socket;

struct NetProbe;

fn probe(addr: SocketAddrV4) -> Result<(), String> {
    let error = |what: &str, e: ErrorCode| format!("{what} failed: {e:?}");
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).map_err(|e| error("socket", e))?;
    let [a, b, c, d] = addr.ip().octets();
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: addr.port(),
        address: (a, b, c, d),
    });
    socket
        .start_connect(&instance_network(), remote)
        .map_err(|e| error("connect", e))?;
    let ready = socket.subscribe();
    let (_input, output) = loop {
        match socket.finish_connect() {
            Err(ErrorCode::WouldBlock) => ready.block(),
            other => break other.map_err(|e| error("connect", e))?,
        }
    };
    output
        .blocking_write_and_flush(b"probe\n")
        .map_err(|e| format!("write failed: {e:?}"))
}

impl Plugin for NetProbe {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "net-probe",
            "0.1.0",
            &["net-probe"],
            "Connects to ip:port (test plugin)",
        )
        .with_capabilities(&["network"])
    }
    fn validate(spec: String) -> Result<(), String> {
        spec.parse::<SocketAddrV4>()
            .map(|_| ())
            .map_err(|e| format!("spec must be an IPv4 ip:port: {e}"))
    }
    fn run(job: Job) -> Outcome {
        let Ok(addr) = job.spec.parse::<SocketAddrV4>() else {
            return Outcome::Failed("spec must be an IPv4 ip:port".into());
        };
        match probe(addr) {
            Ok(()) => Outcome::Completed(format!("connected to {addr}")),
            Err(e) => Outcome::Failed(format!("{addr}: {e}")),
        }
    }
}

export_plugin!(NetProbe);
