//! `net-probe`: opens a TCP connection to the address in its spec, so it imports
//! `wasi:sockets` and needs the `network` grant to load at all.

use std::io::Write;
use std::net::TcpStream;

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct NetProbe;

impl Plugin for NetProbe {
    fn describe() -> PluginInfo {
        PluginInfo::new("net-probe", "0.1.0", &["net-probe"], "Connects to host:port (test plugin)")
            .with_capabilities(&["network"])
    }
    fn validate(spec: String) -> Result<(), String> {
        spec.parse::<std::net::SocketAddr>()
            .map(|_| ())
            .map_err(|e| format!("spec must be ip:port: {e}"))
    }
    fn run(job: Job) -> Outcome {
        match TcpStream::connect(job.spec.as_str()) {
            Ok(mut stream) => match stream.write_all(b"probe\n") {
                Ok(()) => Outcome::Completed(format!("connected to {}", job.spec)),
                Err(e) => Outcome::Failed(format!("write failed: {e}")),
            },
            Err(e) => Outcome::Failed(format!("connect to {} failed: {e}", job.spec)),
        }
    }
}

export_plugin!(NetProbe);
