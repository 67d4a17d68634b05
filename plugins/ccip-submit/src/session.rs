//! The HTTP session with one Chainlink node: sending a request (connection failures ask for a
//! retry), logging in (`POST /sessions`, the `clsession` cookie), calls under the session that
//! log in again once on a 401, and what an error answer makes of the job (a retry when the
//! node is failing or busy, else a failure naming the node's detail, credentials masked).

use jobhost_plugin_sdk::http::{self, Request, Response};
use jobhost_plugin_sdk::{Outcome, RetryRequest, log};

use crate::credentials::Credentials;
use crate::jsonapi::detail;

/// Name of the session cookie a Chainlink node sets on login.
pub(crate) const SESSION_COOKIE: &str = "clsession";

/// Retry with the job's own backoff (an `after_ms` of 0 lets the host choose).
pub(crate) fn retry(reason: String) -> Outcome {
    Outcome::Retry(RetryRequest {
        after_ms: 0,
        reason,
    })
}

/// Statuses worth another attempt later: the node is failing or busy, not refusing.
pub(crate) fn transient(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The `clsession` cookie's value from a login answer's `Set-Cookie` headers.
pub(crate) fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .filter_map(|(_, value)| value.split(';').next()?.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Sends one request to `node`. A refused request fails the job; a connection failure or a
/// timeout asks for a retry.
fn send(
    node: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, Outcome> {
    let request = Request {
        method,
        url,
        headers,
        body,
        timeout: None,
    };
    http::send(&request).map_err(|e| match e {
        http::Error::Denied(_) | http::Error::Invalid(_) => {
            Outcome::Failed(format!("node {node}: {e}"))
        }
        http::Error::Connection(_) | http::Error::Timeout(_) => {
            let reason = format!("node {node} unreachable: {e}");
            log::warn(&reason);
            retry(reason)
        }
    })
}

/// Logs in to `node`: `POST /sessions`; the session cookie's value.
fn login(node: &str, base: &str, credentials: &Credentials) -> Result<String, Outcome> {
    let body = serde_json::json!({"email": credentials.email, "password": credentials.password});
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    let response = send(
        node,
        "POST",
        &format!("{base}/sessions"),
        &headers,
        body.to_string().as_bytes(),
    )?;
    let status = response.status;
    log::info(&format!("node {node}: login: {status}"));
    if !(200..300).contains(&status) {
        let detail = credentials.redact(&detail(&response.body));
        return Err(if transient(status) {
            retry(format!("node {node} could not log in ({status}): {detail}"))
        } else {
            Outcome::Failed(format!(
                "node {node} refused the login ({status}): {detail}; check its credentials \
                 (secrets chainlink/{node}/email and chainlink/{node}/password)"
            ))
        });
    }
    session_cookie(&response).ok_or_else(|| {
        Outcome::Failed(format!(
            "node {node} accepted the login but set no {SESSION_COOKIE} cookie: is {base} a Chainlink node?"
        ))
    })
}

/// A logged-in session with one node.
pub(crate) struct Session<'a> {
    /// The node's name.
    pub(crate) node: &'a str,
    /// The node's base URL.
    base: &'a str,
    /// Its credentials, to log in again when the session expires.
    credentials: Credentials,
    /// The session cookie's value.
    cookie: String,
}

impl<'a> Session<'a> {
    /// Logs in to `node` at `base`.
    pub(crate) fn open(
        node: &'a str,
        base: &'a str,
        credentials: Credentials,
    ) -> Result<Self, Outcome> {
        let cookie = login(node, base, &credentials)?;
        Ok(Session {
            node,
            base,
            credentials,
            cookie,
        })
    }

    /// Sends a call under the session; a 401 (the session expired) logs in again once and
    /// sends it again. A second 401 fails the job.
    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Response, Outcome> {
        let response = self.call_once(method, path, body)?;
        if response.status != 401 {
            return Ok(response);
        }
        log::info(&format!(
            "node {}: {method} {path}: 401, session expired; logging in again",
            self.node
        ));
        self.cookie = login(self.node, self.base, &self.credentials)?;
        let response = self.call_once(method, path, body)?;
        if response.status == 401 {
            return Err(Outcome::Failed(format!(
                "node {} refused a fresh session ({method} {path}: 401): {}",
                self.node,
                self.detail(&response)
            )));
        }
        Ok(response)
    }

    /// Sends a call with the session cookie and logs its status.
    fn call_once(&self, method: &str, path: &str, body: &[u8]) -> Result<Response, Outcome> {
        let mut headers = vec![(
            "cookie".to_owned(),
            format!("{SESSION_COOKIE}={}", self.cookie),
        )];
        if !body.is_empty() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let url = format!("{}{path}", self.base);
        let response = send(self.node, method, &url, &headers, body)?;
        log::info(&format!(
            "node {}: {method} {path}: {}",
            self.node, response.status
        ));
        Ok(response)
    }

    /// What the node said in `response`, credentials masked.
    pub(crate) fn detail(&self, response: &Response) -> String {
        self.credentials.redact(&detail(&response.body))
    }

    /// The outcome of an error answer to `what`: a retry if transient, else a failure.
    pub(crate) fn refused(&self, what: &str, response: &Response) -> Outcome {
        let (node, status) = (self.node, response.status);
        let detail = self.detail(response);
        if transient(status) {
            retry(format!("node {node} answered {status} to {what}: {detail}"))
        } else {
            Outcome::Failed(format!("node {node} rejected {what} ({status}): {detail}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An answer with `status`, `headers` (name, value) and `body`.
    fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// A session with node `node-1` as [`Session::open`] leaves it (no request is sent).
    fn session() -> Session<'static> {
        Session {
            node: "node-1",
            base: "http://node-1.internal:6688",
            credentials: Credentials {
                email: "admin@node1.example".into(),
                password: "n0de1-s3cret-pa55word".into(),
            },
            cookie: "abc".into(),
        }
    }

    /// The reason of a retry, or the message of a failure; panics on anything else.
    fn reason(outcome: Outcome) -> (&'static str, String) {
        match outcome {
            Outcome::Retry(RetryRequest { after_ms, reason }) => {
                assert_eq!(after_ms, 0, "the job's own backoff");
                ("retry", reason)
            }
            Outcome::Failed(message) => ("failed", message),
            Outcome::Completed(output) => panic!("completed: {output}"),
        }
    }

    #[test]
    fn failing_or_busy_statuses_are_transient() {
        for status in [500, 502, 503, 504, 599, 408, 429] {
            assert!(transient(status), "{status}");
        }
        for status in [200, 201, 204, 400, 401, 403, 404, 405, 409, 422, 499] {
            assert!(!transient(status), "{status}");
        }
    }

    #[test]
    fn a_retry_leaves_the_backoff_to_the_host() {
        assert_eq!(
            reason(retry("node down".into())),
            ("retry", "node down".to_owned())
        );
    }

    #[test]
    fn the_session_cookie_is_the_clsession_value() {
        let login = response(
            200,
            &[
                ("content-type", "application/json"),
                ("set-cookie", "other=1; Path=/"),
                (
                    "set-cookie",
                    "clsession=MTc0NTk2; Path=/; Expires=Thu, 29 May 2025 10:00:00 GMT; HttpOnly; SameSite=Strict",
                ),
            ],
            b"{}",
        );
        assert_eq!(session_cookie(&login).as_deref(), Some("MTc0NTk2"));
        // Leading blanks and a value holding `=` (base64 padding) are kept as the node set them.
        let login = response(200, &[("set-cookie", " clsession=YWJj==; Path=/")], b"");
        assert_eq!(session_cookie(&login).as_deref(), Some("YWJj=="));
    }

    #[test]
    fn no_session_cookie_without_a_set_clsession() {
        for headers in [
            &[][..],
            &[("set-cookie", "other=1; Path=/")][..],
            // Emptied (a logout's answer), or only named in the attributes.
            &[("set-cookie", "clsession=; Path=/; Max-Age=0")][..],
            &[("set-cookie", "other=1; clsession=abc")][..],
            &[("set-cookie", "clsession")][..],
            // Not a Set-Cookie header, or a cookie with a name that only starts the same.
            &[("cookie", "clsession=abc")][..],
            &[("x-set-cookie", "clsession=abc")][..],
            &[("set-cookie", "clsession2=abc")][..],
        ] {
            assert_eq!(
                session_cookie(&response(200, headers, b"")),
                None,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn an_error_answer_from_a_failing_node_asks_for_a_retry() {
        let answer = response(
            503,
            &[],
            json!({ "errors": [{ "detail": "database is down" }] })
                .to_string()
                .as_bytes(),
        );
        assert_eq!(
            reason(session().refused("the job", &answer)),
            (
                "retry",
                "node node-1 answered 503 to the job: database is down".to_owned()
            )
        );
    }

    #[test]
    fn an_error_answer_refusing_the_call_fails_the_job_with_the_nodes_detail() {
        let answer = response(
            400,
            &[],
            json!({ "errors": [{ "detail": "unknown job type: foo" }] })
                .to_string()
                .as_bytes(),
        );
        assert_eq!(
            reason(session().refused("the job", &answer)),
            (
                "failed",
                "node node-1 rejected the job (400): unknown job type: foo".to_owned()
            )
        );
    }

    #[test]
    fn the_nodes_detail_never_carries_the_credentials() {
        let answer = response(
            422,
            &[],
            json!({ "errors": [{
                "detail": "user admin@node1.example: password n0de1-s3cret-pa55word expired"
            }] })
            .to_string()
            .as_bytes(),
        );
        let session = session();
        assert_eq!(session.detail(&answer), "user ***: password *** expired");
        let (_, message) = reason(session.refused("the deletion of job 7", &answer));
        assert_eq!(
            message,
            "node node-1 rejected the deletion of job 7 (422): user ***: password *** expired"
        );
    }
}
