//! Outbound HTTP through `wasi:http` (grant: `http`), to allow-listed hosts only.
//!
//! A plugin granted `http` may send requests to the hosts its `plugins.<id>.allowed_hosts`
//! patterns match, and nowhere else: an empty list denies everything. Patterns:
//! `*` (any host), `example.com` (any scheme, default port), `https://*.example.com`
//! (subdomains, HTTPS), `http://127.0.0.1:8080` (exact scheme, host and port). Where the
//! request may then connect is [`Destinations`]' decision: never this node's own services,
//! link-local or cloud metadata addresses; loopback and private addresses only when
//! `plugins.<id>.allow_private` covers them or a pattern names that very address. Names are
//! resolved and every address checked before the request is sent.
//!
//! A refused request fails inside the plugin with an error naming the host and the config
//! key; the same line goes to the job log. Every request also checks the `http` grant
//! itself at the time it is sent (see [`super::GrantCheck`]), so a revoked grant holds
//! even for a build loaded before. Every request gets the configured connect and
//! response timeouts, and responses are cut at `runtime.http_max_response_bytes`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jobhost_config::PluginConfig;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::CallState;
use super::destinations::Destinations;
use super::http_send;
use super::{Capability, GrantCheck};
use crate::context::JobContext;
use crate::job::LogLevel;

/// The `http` capability.
pub struct Http;

impl Capability for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:http/"]
    }
    fn check(&self, id: &str, plugin: &PluginConfig) -> Result<(), String> {
        for pattern in &plugin.allowed_hosts {
            HostPattern::parse(pattern).map_err(|e| format!("plugins.{id}.allowed_hosts: {e}"))?;
        }
        Ok(())
    }
    fn link(&self, linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    /// Lower-case host; `*` alone is any host, a leading `*.` any subdomain.
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| format!("allowed host {pattern:?}: {why}");
        let (scheme, rest) = match pattern.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (Some(scheme.to_owned()), rest),
            Some(_) => return Err(bad("scheme must be http or https")),
            None => (None, pattern),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.is_empty() {
            return Err(bad("give a host (and port), not a path"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                let port = port.parse().map_err(|_| bad("port must be a number"))?;
                (host, Some(port))
            }
            _ => (rest, None),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host != "*" && host.contains('*') && !host.starts_with("*.") {
            return Err(bad("a wildcard may only be `*` or a leading `*.`"));
        }
        Ok(HostPattern { scheme, host, port })
    }

    /// True if this pattern names the literal address `ip` (not a wildcard or a name) and
    /// matches `scheme` and `port`: the operator's opt-in for that one address.
    pub fn names_exactly(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        let default_port = if scheme == "https" { 443 } else { 80 };
        self.host.parse::<IpAddr>().is_ok_and(|own| own == ip)
            && self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.unwrap_or(default_port) == port
    }

    /// True if a request to `scheme://host:port` is allowed by this pattern.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        if self.port.unwrap_or(default_port) != port && self.host != "*" {
            return false;
        }
        let host = host.to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == self.host,
        }
    }
}

/// The outbound-HTTP policy of one plugin instance.
pub struct HttpPolicy {
    plugin: String,
    allowed: Arc<[HostPattern]>,
    timeout: Duration,
    max_response_bytes: u64,
    context: Arc<JobContext>,
    grants: GrantCheck,
    destinations: Destinations,
}

impl HttpPolicy {
    /// The policy for `plugin` with its parsed allow-list and the runtime's limits; `grants`
    /// is checked for `http` at every request.
    pub fn new(
        plugin: &str,
        allowed: Arc<[HostPattern]>,
        timeout: Duration,
        max_response_bytes: u64,
        context: Arc<JobContext>,
        grants: GrantCheck,
        destinations: Destinations,
    ) -> Self {
        HttpPolicy {
            plugin: plugin.to_owned(),
            allowed,
            timeout,
            max_response_bytes,
            context,
            grants,
            destinations,
        }
    }

    /// Aims refusals at the log of the call `context` (a kept instance's next call).
    pub(crate) fn begin_call(&mut self, context: Arc<JobContext>) {
        self.context = context;
    }

    /// Why a request to `uri` is refused, if it is.
    fn refusal(&self, uri: &http::Uri) -> Option<String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or("");
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let refused = |named: bool| {
            let refusal = self.destinations.refusal((ip?, port).into(), named)?;
            Some(format!("request to {host} denied: {refusal}"))
        };
        // What no entry can allow (the node's own services, metadata) first, then the
        // allow-list, then the opt-in that loopback and private addresses need.
        if let Some(refusal) = refused(true) {
            return Some(refusal);
        }
        if !self.allowed.iter().any(|p| p.matches(scheme, host, port)) {
            return Some(format!(
                "request to {scheme}://{host}:{port} denied: not in plugins.{}.allowed_hosts",
                self.plugin
            ));
        }
        refused(ip.is_some_and(|ip| self.names_exactly(scheme, ip, port)))
    }
}

impl HttpPolicy {
    /// True if an `allowed_hosts` entry names the literal address `ip` for this scheme and
    /// port: the operator's opt-in for that one loopback or private address.
    fn names_exactly(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        self.allowed
            .iter()
            .any(|p| p.names_exactly(scheme, ip, port))
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        _ = fut;
        if let Err(denial) = self.grants.require("http") {
            return Box::new(async move { Err(HttpError::InternalError(Some(denial))) });
        }
        if let Some(refusal) = self.refusal(request.uri()) {
            self.context.log(LogLevel::Warn, &refusal);
            return Box::new(async move { Err(HttpError::InternalError(Some(refusal))) });
        }
        // The plugin may ask for shorter timeouts, never longer ones than the host's.
        let cap =
            |asked: Option<Duration>| Some(asked.map_or(self.timeout, |t| t.min(self.timeout)));
        let asked = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        };
        let uri = request.uri();
        let tls = uri.scheme_str() != Some("http");
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let named = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| self.names_exactly(if tls { "https" } else { "http" }, ip, port));
        let limit = self.max_response_bytes;
        let context = self.context.clone();
        let destinations = self.destinations.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            // Resolved once, checked, and connected to exactly what was checked.
            let target = match http_send::resolve(&destinations, &host, port, tls, named).await {
                Ok(target) => target,
                Err(refusal) => {
                    context.log(LogLevel::Warn, &refusal);
                    return Err(HttpError::InternalError(Some(refusal)));
                }
            };
            let (response, io) = http_send::send(target, request, options, limit).await?;
            let response = response.map(|body| body.boxed_unsync());
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(pattern: &str, scheme: &str, host: &str, port: u16) -> bool {
        HostPattern::parse(pattern)
            .unwrap()
            .matches(scheme, host, port)
    }

    #[test]
    fn patterns_match_scheme_host_and_port() {
        assert!(allowed("*", "http", "anything.test", 1234));
        assert!(allowed("example.com", "https", "example.com", 443));
        assert!(allowed("example.com", "http", "EXAMPLE.com", 80));
        assert!(!allowed("example.com", "https", "example.com", 8443));
        assert!(!allowed("example.com", "https", "evil-example.com", 443));
        assert!(allowed(
            "https://*.example.com",
            "https",
            "api.example.com",
            443
        ));
        assert!(!allowed(
            "https://*.example.com",
            "https",
            "example.com",
            443
        ));
        assert!(!allowed(
            "https://*.example.com",
            "http",
            "api.example.com",
            80
        ));
        assert!(allowed("http://127.0.0.1:8080", "http", "127.0.0.1", 8080));
        assert!(!allowed("http://127.0.0.1:8080", "http", "127.0.0.1", 8081));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in ["ftp://x", "http://x/path", "a*b.com", "http://x:port", ""] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
