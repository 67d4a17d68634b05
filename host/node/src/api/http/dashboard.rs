//! The dashboard: one self-contained page at `GET /` (HTML, CSS and vanilla JavaScript in
//! `dashboard.html`, compiled in; no build step, nothing loaded from elsewhere, so it works
//! offline).
//!
//! The page is a live view of the cluster: the newest jobs (state, type, node, attempts,
//! duration), a selected job's spec, output or reason, attempt history and live log, the
//! host nodes (heartbeat age, load, job types), the plugins (version, job types, grants, and
//! the rejection reason of rejected files, shown prominently) and the queue depth per job
//! type. It renders the `snapshot` events of `GET /v1/stream` as they come (about one a
//! second), reconnecting with backoff and showing a "disconnected" badge while the stream
//! is down, and follows the selected job's log over `GET /v1/jobs/{id}/logs`. Its History
//! tab searches the job history (`GET /v1/history`: type, state, label, submitter, finish
//! time; paged with "More") and opens a result in the same job detail, marked "archived"
//! when only the history still holds it; it says so when the node has no history (409) or
//! its database is down (503). It writes server data into the DOM as text only.
//! `tests/dashboard.rs` drives it in a real headless Chromium.
//!
//! The page itself is open (see `guard::is_open`), its data is not: when the API asks for
//! credentials (TLS on, or `[auth.tokens]` configured) an answer 401 hides the data and shows
//! a sign-in form for a bearer token. The token is kept in the tab's `sessionStorage` (not
//! `localStorage`, not a cookie) until "Sign out", and sent as `Authorization: Bearer` on
//! every request. So that the event streams carry it too, the page reads them with `fetch`
//! and a small Server-Sent-Events parser (reconnecting with backoff) instead of
//! `EventSource`, which cannot send headers. A browser presenting a client certificate over
//! TLS needs no token. A 403 (a viewer cancelling a job) shows the server's message; a 429
//! shows a "slow down" note and the request is retried after `Retry-After`.
//!
//! The response carries a Content-Security-Policy allowing only the page's own inline
//! script and style and requests to this origin.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// What the page may do: its inline script and style, requests to its own origin.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the dashboard. Merged into the HTTP API's router, whatever its state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        // No CDN, font or image from elsewhere: CI and many deployments are offline.
        for needle in [
            "http:",
            "https:",
            "src=\"//",
            "href=\"//",
            "@import",
            "innerHTML",
        ] {
            assert!(!PAGE.contains(needle), "dashboard.html contains {needle:?}");
        }
        for endpoint in ["/v1/stream", "/v1/jobs/", "/logs", "/v1/history"] {
            assert!(
                PAGE.contains(endpoint),
                "dashboard.html never uses {endpoint}"
            );
        }
    }

    #[test]
    fn the_token_stays_in_the_tab_and_goes_with_every_request() {
        // EventSource cannot send an Authorization header: streams are read with fetch.
        for needle in ["new EventSource", "localStorage.", "document.cookie"] {
            assert!(!PAGE.contains(needle), "dashboard.html uses {needle:?}");
        }
        for needle in [
            "sessionStorage.setItem(TOKEN_KEY",
            "\"Authorization\", \"Bearer \"",
            "getReader()",
            "new TextDecoder()",
        ] {
            assert!(PAGE.contains(needle), "dashboard.html lacks {needle:?}");
        }
    }

    #[tokio::test]
    async fn get_root_serves_the_page_as_utf8_html() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes::<()>()).await });
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: text/html; charset=utf-8"),
            "{head}"
        );
        assert!(head.contains("content-security-policy: default-src 'none'"));
        assert_eq!(body, PAGE);
    }
}
