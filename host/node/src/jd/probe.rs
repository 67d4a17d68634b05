//! The Job Distributor's periodic work. Settling: a finished delivery's outcome is copied
//! into its proposal soon after, not only when someone reads the proposal, so it outlives
//! the delivery job's retention. Probing: whether each registered node's HTTP API answers,
//! by a health probe
//! (`GET <chainlink_url>/health`) of every node found in the nodes file. Any HTTP answer
//! counts (a node reports unhealthy checks with 503, and still answers); a refused or timed
//! out connection does not. For `https://` nodes, a TCP connection counts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Distributor, NodeFilter};

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// When each node last answered. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Connectivity {
    last_answer: Arc<RwLock<HashMap<String, Instant>>>,
}

impl Connectivity {
    /// True if node `id` answered within `window`.
    pub fn is_connected(&self, id: &str, window: Duration) -> bool {
        let seen = self.last_answer.read().unwrap_or_else(|e| e.into_inner());
        seen.get(id).is_some_and(|at| at.elapsed() <= window)
    }

    fn record(&self, id: &str, answered: bool) {
        let mut seen = self.last_answer.write().unwrap_or_else(|e| e.into_inner());
        if answered {
            seen.insert(id.to_owned(), Instant::now());
        } else {
            seen.remove(id);
        }
    }
}

/// Probes every node with a nodes-file entry each `interval`, and settles finished
/// deliveries into their proposals, until `stop`.
pub async fn run(jd: Distributor, interval: Duration, stop: CancellationToken) {
    loop {
        if let Err(e) = probe_all(&jd).await {
            tracing::debug!("Job Distributor health probe skipped: {e}");
        }
        if let Err(e) = jd.settle_pending().await {
            tracing::debug!("Job Distributor: settling deliveries skipped: {e}");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn probe_all(jd: &Distributor) -> Result<(), super::JdError> {
    let Some(file) = &jd.nodes_file else {
        return Ok(());
    };
    let (nodes, _) = jd.list_nodes(&NodeFilter::default(), 0, 0).await?;
    let mut probes = Vec::new();
    for node in nodes {
        if let Some(entry) = file.find(&node.name, &node.public_key)? {
            probes.push(async move {
                let answered = answers(&entry.chainlink_url).await;
                (node.id, answered)
            });
        }
    }
    for (id, answered) in futures::future::join_all(probes).await {
        jd.connectivity.record(&id, answered);
    }
    Ok(())
}

/// True if the HTTP API at `url` answers a `GET /health` with any HTTP status.
async fn answers(url: &str) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, probe(url))
        .await
        .unwrap_or(false)
}

async fn probe(url: &str) -> bool {
    let (tls, rest) = match url.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        _ => return false,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
        return false;
    };
    if tls {
        return true;
    }
    let request = format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head).await {
        Ok(_) => head.starts_with(b"HTTP/1."),
        Err(_) => false,
    }
}
