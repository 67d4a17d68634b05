//! Chainlink nodes: registration, lookup, listing and updates, their chain configs from
//! the nodes file, and whether their HTTP APIs answer.

use jobhost_store::{Created, RecordKind, UniqueIndex};

use super::labels::{self, Selector};
use super::records::ChainlinkNode;
use super::{Distributor, JdError, Result, invalid_labels, nodes_file, now, probe, to_json};

/// What to register.
#[derive(Debug, Clone, Default)]
pub struct NodeRegistration {
    /// Node name.
    pub name: String,
    /// CSA public key.
    pub public_key: String,
    /// Labels.
    pub labels: Vec<(String, Option<String>)>,
}

/// Which nodes to list.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    /// Only these ids (empty: any).
    pub ids: Vec<String>,
    /// Only enabled (`Some(true)`) or disabled (`Some(false)`) nodes.
    pub enabled: Option<bool>,
    /// Every selector must match.
    pub selectors: Vec<Selector>,
    /// Only these public keys (empty: any).
    pub public_keys: Vec<String>,
}

/// A chain config of a registered node, with the id of the node it belongs to.
#[derive(Debug, Clone)]
pub struct NodeChainConfig {
    /// The registered node's id.
    pub node_id: String,
    /// Where it comes from.
    pub config: ChainConfigSource,
}

/// Where a node's chain config comes from.
#[derive(Debug, Clone)]
pub enum ChainConfigSource {
    /// The node sent it (`UpdateNode` over wsrpc).
    Reported(jobhost_proto::cfm::ChainConfig),
    /// The operator wrote it in the nodes file (for nodes that never connected).
    File(nodes_file::ChainConfigEntry),
}

impl Distributor {
    /// Probes the nodes' HTTP APIs every `jd.probe_interval_ms` until `stop` (see
    /// [`probe`]); [`Distributor::is_connected`] answers from it.
    pub async fn probe_nodes(self, stop: tokio_util::sync::CancellationToken) {
        let interval = std::time::Duration::from_millis(self.config.probe_interval_ms.max(100));
        probe::run(self, interval, stop).await;
    }

    /// Whether `node` is connected: for a node that has connected over wsrpc, whether it
    /// holds a live session now (on any jobhost node); for the others, whether its HTTP API
    /// answers its health probe.
    pub async fn connected(&self, node: &ChainlinkNode) -> bool {
        if node.report.is_none() {
            return self.is_connected(&node.id);
        }
        let window = super::channel::session_touch_interval(&self.config).as_millis() as u64 * 3;
        match self.store.jd_session_seen(&node.id).await {
            Ok(Some(seen)) => now().saturating_sub(seen) <= window,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(node = %node.id, "cannot read the node's session: {e}");
                false
            }
        }
    }

    /// True while node `id`'s HTTP API answers its health probe: its last probe got an
    /// answer, within three probe intervals.
    pub fn is_connected(&self, id: &str) -> bool {
        let window = std::time::Duration::from_millis(
            self.config.probe_interval_ms.max(100).saturating_mul(3),
        );
        self.connectivity.is_connected(id, window)
    }

    /// Registers a node. Its public key must be new (ALREADY_EXISTS otherwise); new nodes
    /// are enabled.
    pub async fn register_node(&self, registration: NodeRegistration) -> Result<ChainlinkNode> {
        let name = registration.name.trim();
        let public_key = registration.public_key.trim();
        if name.is_empty() {
            return Err(JdError::InvalidArgument("name must not be empty".into()));
        }
        if public_key.is_empty() {
            return Err(JdError::InvalidArgument(
                "public_key must not be empty".into(),
            ));
        }
        let labels = labels::parse(registration.labels).map_err(invalid_labels)?;
        let now = now();
        let node = ChainlinkNode {
            id: jobhost_store::new_id(),
            name: name.to_owned(),
            public_key: public_key.to_owned(),
            enabled: true,
            labels,
            created_ms: now,
            updated_ms: now,
            report: None,
        };
        let created = self
            .store
            .jd_create(
                RecordKind::Nodes,
                UniqueIndex::NodeKeys,
                public_key,
                &node.id,
                &to_json(&node),
            )
            .await?;
        match created {
            Created::New => {
                tracing::info!(node = %node.id, name = %node.name, "Job Distributor: node registered");
                Ok(node)
            }
            Created::Exists(id) => Err(JdError::AlreadyExists(format!(
                "a node with public key {public_key} is already registered (id {id})"
            ))),
        }
    }

    /// The node `id`.
    pub async fn node(&self, id: &str) -> Result<ChainlinkNode> {
        self.load::<ChainlinkNode>(RecordKind::Nodes, id)
            .await?
            .map(|(n, _)| n)
            .ok_or_else(|| JdError::NotFound(format!("node {id} not found")))
    }

    /// The node with `public_key`.
    pub async fn node_by_key(&self, public_key: &str) -> Result<ChainlinkNode> {
        let id = self
            .store
            .jd_lookup(UniqueIndex::NodeKeys, public_key.trim())
            .await?
            .ok_or_else(|| JdError::NotFound(format!("no node with public key {public_key}")))?;
        self.node(&id).await
    }

    /// Nodes matching `filter`, oldest first, one page of `page_size` (0: all) at 1-based
    /// `page`; also the number of matches in all.
    pub async fn list_nodes(
        &self,
        filter: &NodeFilter,
        page_size: usize,
        page: usize,
    ) -> Result<(Vec<ChainlinkNode>, usize)> {
        let mut nodes: Vec<ChainlinkNode> = self
            .all::<ChainlinkNode>(RecordKind::Nodes)
            .await?
            .into_iter()
            .filter(|n| filter.ids.is_empty() || filter.ids.contains(&n.id))
            .filter(|n| filter.enabled.is_none_or(|e| n.enabled == e))
            .filter(|n| filter.public_keys.is_empty() || filter.public_keys.contains(&n.public_key))
            .filter(|n| labels::all_match(&filter.selectors, &n.labels))
            .collect();
        nodes.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        let total = nodes.len();
        if page_size > 0 {
            let skip = page.max(1).saturating_sub(1).saturating_mul(page_size);
            nodes = nodes.into_iter().skip(skip).take(page_size).collect();
        }
        Ok((nodes, total))
    }

    /// Changes a node's name, public key and labels: only the ones given (non-empty).
    pub async fn update_node(
        &self,
        id: &str,
        name: &str,
        public_key: &str,
        new_labels: Vec<(String, Option<String>)>,
    ) -> Result<ChainlinkNode> {
        let new_labels = if new_labels.is_empty() {
            None
        } else {
            Some(labels::parse(new_labels).map_err(invalid_labels)?)
        };
        let current = self.node(id).await?;
        let public_key = public_key.trim();
        let rekey = !public_key.is_empty() && public_key != current.public_key;
        if rekey
            && !self
                .store
                .jd_claim_index(UniqueIndex::NodeKeys, public_key, id)
                .await?
        {
            return Err(JdError::AlreadyExists(format!(
                "a node with public key {public_key} is already registered"
            )));
        }
        let name = name.trim();
        let updated = self
            .update(RecordKind::Nodes, id, "node", |node: &mut ChainlinkNode| {
                if !name.is_empty() {
                    node.name = name.to_owned();
                }
                if rekey {
                    node.public_key = public_key.to_owned();
                }
                if let Some(l) = &new_labels {
                    node.labels = l.clone();
                }
                node.updated_ms = now();
                Ok(())
            })
            .await?;
        if rekey {
            self.store
                .jd_release_index(UniqueIndex::NodeKeys, &current.public_key)
                .await?;
        }
        Ok(updated)
    }

    /// Enables or disables proposals to node `id`.
    pub async fn set_node_enabled(&self, id: &str, enabled: bool) -> Result<ChainlinkNode> {
        self.update(RecordKind::Nodes, id, "node", |node: &mut ChainlinkNode| {
            node.enabled = enabled;
            node.updated_ms = now();
            Ok(())
        })
        .await
    }

    /// Chain configs of the registered nodes `node_ids` (empty: all): what each node sent
    /// in its latest `UpdateNode`, or, for nodes that never connected, the nodes file's.
    pub async fn chain_configs(&self, node_ids: &[String]) -> Result<Vec<NodeChainConfig>> {
        let (nodes, _) = self
            .list_nodes(
                &NodeFilter {
                    ids: node_ids.to_vec(),
                    ..NodeFilter::default()
                },
                0,
                0,
            )
            .await?;
        let mut out = Vec::new();
        for node in nodes {
            let configs: Vec<ChainConfigSource> = match (&node.report, &self.nodes_file) {
                (Some(report), _) => report
                    .update()
                    .chain_configs
                    .into_iter()
                    .map(ChainConfigSource::Reported)
                    .collect(),
                (None, Some(file)) => match file.find(&node.name, &node.public_key)? {
                    Some(entry) => entry
                        .chain_configs
                        .into_iter()
                        .map(ChainConfigSource::File)
                        .collect(),
                    None => Vec::new(),
                },
                (None, None) => Vec::new(),
            };
            out.extend(configs.into_iter().map(|config| NodeChainConfig {
                node_id: node.id.clone(),
                config,
            }));
        }
        Ok(out)
    }
}
