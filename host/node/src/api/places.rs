//! Counted places per client, for what a client holds open rather than does once:
//!
//! - Long-lived calls: a log follow (`StreamJobLogs`, `/v1/jobs/{id}/logs`), the dashboard's
//!   live snapshots (`/v1/stream`), a health watch or a reflection session each hold a place
//!   for as long as their response streams; one client (identity) holds at most
//!   `api.max_streams_per_client`. The rate limit charges a stream once, when it opens; this
//!   bounds what one client can keep open (and, for `/v1/stream`, how many Redis snapshots a
//!   second it causes), which a connection cap alone does not: one HTTP/2 connection carries
//!   many streams.
//! - Connections: each holds a place of its address, at most
//!   `api.max_connections_per_address` per address and API, so one host cannot take every
//!   connection the node keeps (see [`super::listener::ApiListener`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The places every client holds.
#[derive(Debug)]
pub struct Places {
    limit: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl Places {
    /// At most `limit` places per client.
    pub fn new(limit: usize) -> Arc<Places> {
        Arc::new(Places {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The most places one client may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes a place for `client`, or `None` when it holds `limit` already.
    pub fn open(self: &Arc<Self>, client: &str) -> Option<Place> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client.to_owned()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Place {
            slots: self.clone(),
            client: client.to_owned(),
        })
    }

    /// How many places `client` holds now.
    pub fn held(&self, client: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(client).copied().unwrap_or(0)
    }
}

/// One place; given back when dropped.
#[derive(Debug)]
pub struct Place {
    slots: Arc<Places>,
    client: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// A response body that holds its stream's [`Place`] until the body is done with
/// (finished, or dropped when the client goes away).
pub struct Holding<B> {
    inner: B,
    _slot: Place,
}

impl<B> Holding<B> {
    /// `inner`, holding `slot` while it lives.
    pub fn new(inner: B, slot: Place) -> Holding<B> {
        Holding { inner, _slot: slot }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_client_and_come_back_when_dropped() {
        let slots = Places::new(2);
        let a1 = slots.open("a").unwrap();
        let _a2 = slots.open("a").unwrap();
        assert!(slots.open("a").is_none(), "a third stream for a");
        let _b = slots.open("b").expect("b has its own places");
        drop(a1);
        assert_eq!(slots.held("a"), 1);
        let _a3 = slots.open("a").expect("a place came back");
        assert!(slots.open("a").is_none());
    }

    #[test]
    fn an_idle_client_leaves_no_entry() {
        let slots = Places::new(1);
        drop(slots.open("gone").unwrap());
        assert!(slots.open.lock().unwrap().is_empty());
    }
}
