//! `jobhost certs init`: a development certificate authority and certificates for mTLS.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// Write a development CA, a server certificate (localhost, 127.0.0.1, ::1 and every
    /// --name), and admin and viewer client certificates into DIR.
    Init {
        /// The folder (created if missing).
        #[arg(default_value = "certs")]
        dir: PathBuf,
        /// Another name (DNS or IP) the server certificate is valid for; repeatable.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Replace certificates already in DIR.
        #[arg(long)]
        force: bool,
    },
}

/// `jobhost certs init`.
pub(crate) fn certs_command(command: &CertsCommand) -> Result<ExitCode> {
    let CertsCommand::Init { dir, names, force } = command;
    jobhost::certs::init_dir(dir, names, *force)?;
    use jobhost::certs::files::*;
    let show = |file: &str| dir.join(file).display().to_string();
    outln!(
        "wrote a development CA and certificates to {}",
        dir.display()
    );
    outln!();
    outln!("Serve with them (add to the config file):");
    outln!("  [tls]");
    outln!("  cert_file = {:?}", show(SERVER_CERT));
    outln!("  key_file = {:?}", show(SERVER_KEY));
    outln!("  client_ca_file = {:?}", show(CA_CERT));
    outln!();
    outln!("Call as admin (or with the viewer-client-*.pem files, as a viewer):");
    outln!(
        "  jobctl --server https://localhost:50051 --ca {} --cert {} --key {} list",
        show(CA_CERT),
        show(ADMIN_CERT),
        show(ADMIN_KEY)
    );
    outln!();
    outln!(
        "{} signs new clients: keep it off servers. For production use your own PKI.",
        show(CA_KEY)
    );
    Ok(ExitCode::SUCCESS)
}
