//! Sends a plugin's HTTP request to the addresses the policy checked, and nowhere else.
//!
//! wasmtime-wasi-http's own sender connects to the request's authority, resolving its name
//! again: a name that answered with a public address when it was checked could answer with
//! `127.0.0.1` a moment later (DNS rebinding). Here the name is resolved once, every address
//! is checked against [`Destinations`], and the connection goes to those very addresses;
//! TLS is still verified against the name (the web PKI's roots), and the `Host` header the
//! plugin's request carries is sent unchanged.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::destinations::Destinations;

/// Where a request may connect: the addresses its host resolved to, all of them checked.
#[derive(Debug)]
pub struct Target {
    /// The checked addresses, in the resolver's order.
    pub addrs: Vec<SocketAddr>,
    /// The host as the request names it (a name, or an address without brackets).
    pub host: String,
    /// True for `https`.
    pub tls: bool,
}

/// Resolves `host` once and checks every address it has; refuses the request (with the
/// reason to give the plugin) if any address is refused, or the name does not resolve.
/// `named` is true when the operator named this literal address in `allowed_hosts`.
pub async fn resolve(
    destinations: &Destinations,
    host: &str,
    port: u16,
    tls: bool,
    named: bool,
) -> Result<Target, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("request to {host}: cannot resolve the name: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("request to {host}: the name has no address"));
    }
    let literal = host.parse::<IpAddr>().is_ok();
    for addr in &addrs {
        if let Some(refusal) = destinations.refusal(*addr, named && literal) {
            let resolved = if literal {
                String::new()
            } else {
                format!(" (it resolves to {})", addr.ip())
            };
            return Err(format!("request to {host} denied{resolved}: {refusal}"));
        }
    }
    Ok(Target {
        addrs,
        host: host.to_owned(),
        tls,
    })
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// The TLS settings of every plugin request: the web PKI's roots, no client certificate.
static TLS: LazyLock<tokio_rustls::TlsConnector> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
});

/// What [`send`] gives back: the response, and the connection's remaining work (the
/// wasi-http contract: the guest learns of a late connection error through it).
pub type Sent = (
    http::Response<IncomingBody>,
    Pin<Box<dyn Future<Output = Result<(), HttpError>> + Send>>,
);

/// Sends `request` over a new connection to `target`'s checked addresses, with the
/// timeouts of `options` (the host's caps already applied); the response body fails once
/// more than `limit` bytes have come.
pub async fn send(
    target: Target,
    mut request: http::Request<WasiBody>,
    options: RequestOptions,
    limit: u64,
) -> Result<Sent, HttpError> {
    let connect_timeout = options.connect_timeout.unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options
        .first_byte_timeout
        .unwrap_or(Duration::from_secs(600));
    let between_bytes = options
        .between_bytes_timeout
        .unwrap_or(Duration::from_secs(600))
        .max(Duration::from_nanos(1)); // tokio's interval refuses zero
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(&target.addrs[..]))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    let stream: Box<dyn Stream> = if target.tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let tls = tokio::time::timeout(connect_timeout, TLS.connect(name, tcp))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(HttpError::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    // The request line carries the path only; the host travels in the `Host` header.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    // The connection is driven beside the request until the response has come; what is
    // left of it goes back to wasi-http with the response.
    let send = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
    let mut send = std::pin::pin!(send);
    let mut conn = Some(Box::pin(conn));
    let answer = |polled: Result<Result<_, hyper::Error>, _>| {
        polled
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(HttpError::from)
    };
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(polled) = send.as_mut().poll(cx) {
            return Poll::Ready(answer(polled));
        }
        if let Some(running) = conn.as_mut()
            && let Poll::Ready(ended) = running.as_mut().poll(cx)
        {
            conn = None;
            if let Err(e) = ended {
                return Poll::Ready(Err(e.into()));
            }
            return send.as_mut().poll(cx).map(answer);
        }
        Poll::Pending
    })
    .await?;
    let mut timeout = tokio::time::interval(between_bytes);
    timeout.reset();
    let response = response.map(|incoming| IncomingBody {
        incoming,
        timeout,
        seen: 0,
        limit,
    });
    let io = Box::pin(async move {
        match conn {
            Some(running) => running.await.map_err(|e| {
                if e.is_timeout() {
                    HttpError::HttpResponseTimeout
                } else {
                    e.into()
                }
            }),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

/// A response body that fails when no data comes for the between-bytes timeout, or once
/// more than `limit` bytes have come (`runtime.http_max_response_bytes`).
pub struct IncomingBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
    seen: u64,
    limit: u64,
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if self.seen > self.limit {
                        let limit = self.limit;
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            limit,
                        )))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                std::task::ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::capabilities::destinations::ProtectedServices;

    fn policy(allow_private: &[&str]) -> Destinations {
        let nets = allow_private
            .iter()
            .map(|n| super::super::destinations::parse_network(n).unwrap())
            .collect();
        Destinations::new("p", nets, Arc::new(ProtectedServices::default()))
    }

    /// The connection goes to the checked addresses, never to what the name resolves to
    /// by then: here the name does not resolve at all, and the request still reaches the
    /// address that was checked, carrying the name as its Host.
    #[tokio::test]
    async fn requests_go_to_the_addresses_that_were_checked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let target = Target {
            addrs: vec![addr],
            host: "rebinding.invalid".into(),
            tls: false,
        };
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get("http://rebinding.invalid/path?q=1")
            .header(http::header::HOST, "rebinding.invalid")
            .body(body)
            .unwrap();
        let (response, _io) = send(target, request, RequestOptions::default(), 1024)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
        let headers: BTreeMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        assert_eq!(headers["host"], "rebinding.invalid");
    }

    #[tokio::test]
    async fn a_name_is_refused_if_any_of_its_addresses_is() {
        let refused = resolve(&policy(&[]), "localhost", 80, false, false).await;
        let why = refused.unwrap_err();
        assert!(
            why.starts_with("request to localhost denied (it resolves to "),
            "{why}"
        );
        let allowed = resolve(
            &policy(&["127.0.0.0/8", "::1"]),
            "localhost",
            80,
            false,
            false,
        )
        .await
        .unwrap();
        assert!(allowed.addrs.iter().all(|a| a.ip().is_loopback()));
        let literal = resolve(&policy(&[]), "[::1]", 8080, false, true)
            .await
            .unwrap();
        assert_eq!(literal.addrs, ["[::1]:8080".parse().unwrap()]);
    }
}
