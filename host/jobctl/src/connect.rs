//! Connecting to a server: TLS with client certificates, or a bearer token (never sent in
//! plaintext beyond loopback).

use std::path::Path;
use std::time::Duration;

use jobhost_proto::scheduler::job_scheduler_client::JobSchedulerClient;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::{Cli, Failure};

pub(crate) type Client = JobSchedulerClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call when a token is given.
#[derive(Clone)]
pub(crate) struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

pub(crate) fn server_url(server: &str, tls: bool) -> String {
    match server.split_once("://") {
        Some(("http", rest)) if tls => format!("https://{rest}"),
        Some(_) => server.to_owned(),
        None if tls => format!("https://{server}"),
        None => format!("http://{server}"),
    }
}

pub(crate) fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read --{flag} {}: {e}", path.display())))
}

/// The TLS settings from --ca, --cert and --key, if any is given or the server URL is
/// `https`; without --ca, the server's certificate must chain to a public root.
pub(crate) fn client_tls(cli: &Cli) -> Result<Option<ClientTlsConfig>, Failure> {
    if cli.ca.is_none() && cli.cert.is_none() && !cli.server.starts_with("https://") {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    match &cli.ca {
        Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read_file("ca", ca)?)),
        None => tls = tls.with_webpki_roots(),
    }
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        tls = tls.identity(Identity::from_pem(
            read_file("cert", cert)?,
            read_file("key", key)?,
        ));
    }
    Ok(Some(tls))
}

/// True if `url`'s host is this machine, where plaintext does not cross a network.
pub(crate) fn is_loopback(url: &str) -> bool {
    let host = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()));
    match host.as_deref() {
        Some("localhost") => true,
        Some(host) => host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

pub(crate) async fn connect(cli: &Cli) -> Result<Client, Failure> {
    let tls = client_tls(cli)?;
    let server = server_url(&cli.server, tls.is_some());
    if cli.token.is_some() && tls.is_none() && !is_loopback(&server) {
        return Err(Failure::usage(format!(
            "refusing to send --token in plaintext to {server}: use an https:// server or --ca"
        )));
    }
    let mut endpoint = Channel::from_shared(server.clone())
        .map_err(|e| Failure::usage(format!("invalid --server {server:?}: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Failure::usage(format!("TLS settings: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(" ({c})"));
        Failure::request(format!(
            "cannot reach jobhost at {server}: {e}{cause} (set --server or JOBHOST_SERVER; \
             over TLS, --ca, --cert and --key)"
        ))
    })?;
    let token = match &cli.token {
        Some(token) => {
            let mut value = format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| Failure::usage("--token must be printable ASCII"))?;
            // Kept out of HTTP/2 header compression tables.
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    Ok(
        JobSchedulerClient::with_interceptor(channel, BearerToken(token))
            .max_decoding_message_size(64 << 20),
    )
}
