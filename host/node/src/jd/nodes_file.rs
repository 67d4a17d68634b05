//! The operator's nodes file: where each Chainlink node's HTTP API is and how to log in to
//! it, in the shape of the CCIP deployer's `nodes.yaml`:
//!
//! ```yaml
//! nodes:
//!   - name: chainlink-node-1
//!     chainlink_url: http://chainlink-node-1:6688
//!     chainlink_email: admin@node1.com
//!     chainlink_password: node1_password
//!     public_key: 3b6c...        # optional: match by CSA key as well as by name
//!     labels: { role: ccip }
//!     chain_configs: [...]       # optional: served by ListNodeChainConfigs
//! ```
//!
//! The file is read again whenever it changes (checked by modification time and size on
//! each use), so an operator edits it without restarting. Passwords never leave this
//! module except to the delivery plugin through its secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

/// One node of the file.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeEntry {
    /// The node's name, as it registers with the Job Distributor.
    pub name: String,
    /// Base URL of the node's HTTP API, e.g. `http://node:6688`.
    pub chainlink_url: String,
    /// Login email.
    pub chainlink_email: Option<String>,
    /// Login password (a secret).
    pub chainlink_password: Option<String>,
    /// The node's CSA public key, to match a node registered under another name.
    pub public_key: Option<String>,
    /// Labels (informational here; nodes register their own).
    pub labels: BTreeMap<String, String>,
    /// Chain configs this node serves, for `ListNodeChainConfigs`.
    pub chain_configs: Vec<ChainConfigEntry>,
}

impl std::fmt::Debug for NodeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEntry")
            .field("name", &self.name)
            .field("chainlink_url", &self.chainlink_url)
            .field("has_credentials", &self.has_credentials())
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl NodeEntry {
    /// True if both email and password are set.
    pub fn has_credentials(&self) -> bool {
        self.chainlink_email
            .as_deref()
            .is_some_and(|e| !e.is_empty())
            && self
                .chainlink_password
                .as_deref()
                .is_some_and(|p| !p.is_empty())
    }
}

/// A node's configuration for one chain (the fields `ListNodeChainConfigs` answers with).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfigEntry {
    /// Chain id, e.g. `"11155111"`.
    pub chain_id: String,
    /// `evm`, `solana`, `starknet`, `aptos`, `tron`, `ton`, `sui`, `stellar` or `canton`.
    pub chain_type: String,
    /// The node's transmitter account on that chain.
    pub account_address: String,
    /// The node operator's admin address.
    pub admin_address: String,
    /// Public key of the account, where the chain has one.
    pub account_address_public_key: Option<String>,
    /// OCR2 settings.
    pub ocr2: Option<Ocr2Entry>,
}

/// OCR2 settings of a chain config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ocr2Entry {
    /// Whether OCR2 is enabled.
    pub enabled: bool,
    /// Whether the node is a bootstrap node.
    pub is_bootstrap: bool,
    /// libp2p multiaddress of a bootstrap node.
    pub multiaddr: String,
    /// P2P peer id.
    pub peer_id: String,
    /// P2P public key.
    pub p2p_public_key: String,
    /// OCR key bundle id.
    pub bundle_id: String,
    /// OCR config public key.
    pub config_public_key: String,
    /// OCR offchain public key.
    pub offchain_public_key: String,
    /// OCR onchain signing address.
    pub onchain_signing_address: String,
    /// Which plugins run: any of `commit`, `execute`, `median`, `mercury`, `rebalancer`.
    pub plugins: Vec<String>,
    /// Forwarder contract address.
    pub forwarder_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileShape {
    nodes: Vec<NodeEntry>,
}

/// Errors reading the nodes file.
#[derive(Debug, thiserror::Error)]
pub enum NodesFileError {
    /// It cannot be read.
    #[error("nodes file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a valid nodes file.
    #[error("nodes file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a password).
        reason: String,
    },
}

/// The nodes file, re-read when it changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodesFile {
    path: PathBuf,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The file's modification time and size when it was read.
type Stamp = (Option<SystemTime>, u64);

/// The entries as read, with the stamp they were read at.
type Cached = (Stamp, Arc<Vec<NodeEntry>>);

impl NodesFile {
    /// The file at `path`, read and checked now.
    pub fn open(path: &Path) -> Result<NodesFile, NodesFileError> {
        let file = NodesFile {
            path: path.to_owned(),
            cache: Arc::default(),
        };
        file.entries()?;
        Ok(file)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its nodes as the file says now.
    pub fn entries(&self) -> Result<Arc<Vec<NodeEntry>>, NodesFileError> {
        let read_error = |source| NodesFileError::Read {
            path: self.path.clone(),
            source,
        };
        let meta = std::fs::metadata(&self.path).map_err(read_error)?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, entries)) = cache.as_ref()
            && *seen == stamp
        {
            return Ok(entries.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(read_error)?;
        let entries = Arc::new(parse(&text).map_err(|reason| NodesFileError::Parse {
            path: self.path.clone(),
            reason,
        })?);
        if cache.is_some() {
            tracing::info!(file = %self.path.display(), nodes = entries.len(), "nodes file reloaded");
        }
        *cache = Some((stamp, entries.clone()));
        Ok(entries)
    }

    /// The entry for a node called `name` or with CSA key `public_key`.
    pub fn find(&self, name: &str, public_key: &str) -> Result<Option<NodeEntry>, NodesFileError> {
        Ok(self
            .entries()?
            .iter()
            .find(|e| {
                e.name == name
                    || e.public_key
                        .as_deref()
                        .is_some_and(|k| !k.is_empty() && k.eq_ignore_ascii_case(public_key))
            })
            .cloned())
    }

    /// The delivery plugin's secret `chainlink/<node>/email`, `chainlink/<node>/password`,
    /// or `chainlink/<node>/url` (the node's API URL, which the plugin holds the spec's URL
    /// to, so a login only goes to its own node).
    pub fn credential(&self, secret_name: &str) -> Option<String> {
        let rest = secret_name.strip_prefix("chainlink/")?;
        let (node, field) = rest.rsplit_once('/')?;
        let entries = match self.entries() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        };
        let entry = entries.iter().find(|e| e.name == node)?;
        match field {
            "email" => entry.chainlink_email.clone(),
            "password" => entry.chainlink_password.clone(),
            "url" => Some(entry.chainlink_url.clone()),
            _ => None,
        }
        .filter(|v| !v.is_empty())
    }
}

/// Deepest `[`/`{` nesting a nodes file may have. The YAML reader refuses more than 128
/// levels anyway, but only after scanning the whole text in time quadratic in the depth
/// (a 200 KB line of `[` took half a minute), so deeper text is refused before it.
const MAX_FLOW_DEPTH: usize = 128;

/// Parses and checks the file's text. Errors name the entry, never a password.
pub(crate) fn parse(text: &str) -> Result<Vec<NodeEntry>, String> {
    // Counted anywhere, quoted or not: an overestimate only for files with over a hundred
    // unbalanced brackets in their values.
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        for c in line.chars() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_FLOW_DEPTH {
                return Err(format!(
                    "not valid YAML at line {}: nested deeper than {MAX_FLOW_DEPTH} levels",
                    i + 1
                ));
            }
        }
    }
    let shape: FileShape = serde_yaml_ng::from_str(text).map_err(|e| {
        // The YAML error may quote the offending line, which may hold a password.
        match e.location() {
            Some(at) => format!(
                "not valid YAML at line {}, column {}",
                at.line(),
                at.column()
            ),
            None => "not valid YAML".to_owned(),
        }
    })?;
    let mut names = std::collections::BTreeSet::new();
    for (i, node) in shape.nodes.iter().enumerate() {
        if node.name.trim().is_empty() {
            return Err(format!("node #{}: name is empty", i + 1));
        }
        if !names.insert(node.name.as_str()) {
            return Err(format!("node {:?} is listed twice", node.name));
        }
        if !(node.chainlink_url.starts_with("http://")
            || node.chainlink_url.starts_with("https://"))
        {
            return Err(format!(
                "node {:?}: chainlink_url must be an http:// or https:// URL",
                node.name
            ));
        }
    }
    Ok(shape.nodes)
}

/// The nodes file is where the delivery plugin's secrets come from (see
/// [`NodesFile::credential`]); read when asked, so a changed file is used at once.
impl jobhost_runtime::SecretProvider for NodesFile {
    fn secret(&self, name: &str) -> Option<String> {
        self.credential(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
nodes:
  - name: "chainlink-node-1"
    chainlink_url: "http://127.0.0.1:6688"
    chainlink_email: "admin@node1.com"
    chainlink_password: "node1_password"
    p2p_port: "6691"
    is_bootstrap: false
    labels:
      role: "ccip"
  - name: "no-creds"
    chainlink_url: "http://127.0.0.1:6689"
"#;

    #[test]
    fn the_deployers_nodes_yaml_is_read_and_credentials_are_served_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.yaml");
        std::fs::write(&path, FILE).unwrap();
        let file = NodesFile::open(&path).unwrap();
        let node = file.find("chainlink-node-1", "").unwrap().unwrap();
        assert!(node.has_credentials());
        assert_eq!(
            file.credential("chainlink/chainlink-node-1/password")
                .as_deref(),
            Some("node1_password")
        );
        assert_eq!(file.credential("chainlink/no-creds/password"), None);
        assert_eq!(file.credential("other/chainlink-node-1/password"), None);
        assert!(
            !format!("{node:?}").contains("node1_password"),
            "Debug hides it"
        );
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_is_an_error_not_stale_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.yaml");
        std::fs::write(&path, FILE).unwrap();
        let file = NodesFile::open(&path).unwrap();
        assert_eq!(file.entries().unwrap().len(), 2);
        std::fs::write(
            &path,
            "nodes:\n  - name: added\n    chainlink_url: http://x:1\n    chainlink_email: a@b\n    chainlink_password: pw-2\n",
        )
        .unwrap();
        assert_eq!(file.entries().unwrap().len(), 1, "re-read on change");
        assert_eq!(
            file.credential("chainlink/added/password").as_deref(),
            Some("pw-2")
        );
        std::fs::write(&path, "nodes: [").unwrap();
        assert!(file.entries().is_err());
        assert_eq!(file.credential("chainlink/added/password"), None);
    }

    #[test]
    fn bad_files_are_refused_without_quoting_passwords() {
        let err = parse("nodes:\n  - name: a\n    chainlink_password: [secret-pw\n").unwrap_err();
        assert!(!err.contains("secret-pw"), "{err}");
        assert!(parse("nodes:\n  - name: a\n    chainlink_url: ftp://x\n").is_err());
        assert!(parse("nodes:\n  - name: a\n    chainlink_url: http://x\n  - name: a\n    chainlink_url: http://y\n").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_before_the_yaml_reader_sees_it() {
        let deep = format!("nodes: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let started = std::time::Instant::now();
        let err = parse(&deep).unwrap_err();
        assert!(err.contains("nested deeper than 128 levels"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let brackets =
            "nodes:\n  - name: a\n    chainlink_url: http://x\n    chainlink_password: \"[[[{{\"\n";
        assert_eq!(
            parse(brackets).unwrap()[0].chainlink_password.as_deref(),
            Some("[[[{{")
        );
    }
}
