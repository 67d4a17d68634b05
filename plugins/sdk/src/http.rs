//! A small blocking HTTP client over `wasi:http` for plugins granted `http`.
//!
//! The host only lets requests through to the plugin's `allowed_hosts`, and only while the
//! plugin is granted `http`; a refused request comes back as [`Error::Denied`] naming the
//! host or the capability, and the config key.

use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The URL or a header is not acceptable.
    Invalid(String),
    /// A connection-level failure: refused, reset, DNS, TLS.
    Connection(String),
    /// A timeout (connect, first byte, or between bytes).
    Timeout(String),
    /// The host's policy refused the request (the message names host and config key).
    Denied(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid(m) => write!(f, "invalid request: {m}"),
            Error::Connection(m) => write!(f, "connection failed: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::Denied(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// `http://` or `https://` URL.
    pub url: &'a str,
    /// Headers.
    pub headers: &'a [(String, String)],
    /// Body (empty for none).
    pub body: &'a [u8],
    /// Connect and response timeout.
    pub timeout: Option<Duration>,
}

/// Sends `request` and reads the whole response.
pub fn send(request: &Request<'_>) -> Result<Response, Error> {
    let (scheme, authority, path) = split_url(request.url)?;
    let headers = Fields::new();
    let has_length = request
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    if !request.body.is_empty() && !has_length {
        // A known length instead of chunked encoding: some receivers insist on it.
        let length = request.body.len().to_string();
        headers
            .append("content-length", length.as_bytes())
            .map_err(|e| Error::Invalid(format!("content-length: {e:?}")))?;
    }
    for (name, value) in request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| Error::Invalid(format!("header {name}: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| Error::Invalid(what.to_owned());
    outgoing
        .set_method(&method(request.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| invalid("body"))?;
    {
        let stream = body.write().map_err(|()| invalid("body stream"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Error::Connection(format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| Error::Connection(format!("{e:?}")))?;
    let options = RequestOptions::new();
    if let Some(timeout) = request.timeout {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let _ = options.set_connect_timeout(Some(ns));
        let _ = options.set_first_byte_timeout(Some(ns));
        let _ = options.set_between_bytes_timeout(Some(ns));
    }
    let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(from_code)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::Connection("no response".into()))?
        .map_err(|()| Error::Connection("response already taken".into()))?
        .map_err(from_code)?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| Error::Connection("response body".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| Error::Connection("response body stream".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                // The host's debug text may carry a backtrace: its first line is the message.
                let text = e.to_debug_string();
                let message = text.lines().next().unwrap_or("stream error");
                return Err(Error::Connection(format!(
                    "reading the response: {message}"
                )));
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

/// (scheme, host[:port], path?query) of an absolute http(s) URL.
pub fn split_url(url: &str) -> Result<(Scheme, &str, &str), Error> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(Error::Invalid(format!("{url:?} is not an http(s) URL")));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::Invalid(format!("{url:?} has no host")));
    }
    Ok((scheme, authority, path))
}

fn from_code(code: ErrorCode) -> Error {
    match code {
        ErrorCode::InternalError(Some(message))
            if message.contains("denied") || message.contains("is not granted") =>
        {
            Error::Denied(message)
        }
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::DnsTimeout => Error::Timeout(format!("{code:?}")),
        ErrorCode::HttpRequestDenied => Error::Denied("request denied by the host".into()),
        other => Error::Connection(format!("{other:?}")),
    }
}
