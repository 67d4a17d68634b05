//! Job Distributor records: nodes, jobs and proposals as JSON documents in hashes, their
//! unique indexes, and the JD's CSA keypair. The shapes of the documents belong to
//! the node's Job Distributor (`jobhost::jd`); this module only stores them, atomically where it matters.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `jd:<kind>` | hash | id → JSON record, for kind `nodes`, `jobs`, `proposals` |
//! | `jd:index:<name>` | hash | unique field → id (`node_keys`: public key; `job_keys`: node id + uuid) |
//! | `jd:csa` | string | the JSON keypair record (created once, by whichever node is first) |
//! | `jd:session` | hash | Chainlink node id → id of the wsrpc session that holds its connection |
//! | `jd:session:seen` | hash | Chainlink node id → when its session last proved alive (Unix ms) |
//! | `jd:outbox:<node id>` | list | calls waiting for the node's session, oldest first |
//!
//! A command pushed to an outbox publishes `jd <node id>` on the events channel, so the
//! jobhost node holding that session sends it at once, wherever it was pushed.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};

use super::{Result, Store};

static JD_CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/jd_create.lua")));
static JD_SWAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/jd_swap.lua")));
static JD_SESSION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/jd_session.lua")));
static JD_KEYPAIR_SWAP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/jd_keypair_swap.lua")));
static JD_OUTBOX_POP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/jd_outbox_pop.lua")));

/// A kind of Job Distributor record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Registered Chainlink nodes.
    Nodes,
    /// Jobs (a spec's uuid on one node).
    Jobs,
    /// Proposals (revisions of a job's spec).
    Proposals,
}

impl RecordKind {
    fn name(self) -> &'static str {
        match self {
            RecordKind::Nodes => "nodes",
            RecordKind::Jobs => "jobs",
            RecordKind::Proposals => "proposals",
        }
    }
}

/// A unique index over Job Distributor records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueIndex {
    /// Node public key → node id.
    NodeKeys,
    /// `<node id>/<uuid>` → job id.
    JobKeys,
}

impl UniqueIndex {
    fn name(self) -> &'static str {
        match self {
            UniqueIndex::NodeKeys => "node_keys",
            UniqueIndex::JobKeys => "job_keys",
        }
    }
}

/// What [`Store::jd_create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The record was stored under its id.
    New,
    /// The unique field already belonged to this id; nothing was stored.
    Exists(String),
}

impl Store {
    fn jd_key(&self, kind: RecordKind) -> String {
        format!("{}jd:{}", self.keys.prefix(), kind.name())
    }

    fn jd_index_key(&self, index: UniqueIndex) -> String {
        format!("{}jd:index:{}", self.keys.prefix(), index.name())
    }

    /// Stores a new record `id` of `kind` if `field` of `index` is free, atomically.
    pub async fn jd_create(
        &self,
        kind: RecordKind,
        index: UniqueIndex,
        field: &str,
        id: &str,
        json: &str,
    ) -> Result<Created> {
        let mut invocation = JD_CREATE.prepare_invoke();
        invocation
            .key(self.jd_index_key(index))
            .key(self.jd_key(kind))
            .arg(field)
            .arg(id)
            .arg(json);
        let mut conn = self.conn();
        let (created, id): (u8, String) = invocation.invoke_async(&mut conn).await?;
        Ok(if created == 1 {
            Created::New
        } else {
            Created::Exists(id)
        })
    }

    /// Stores record `id` of `kind` (a new id: no index involved).
    pub async fn jd_put(&self, kind: RecordKind, id: &str, json: &str) -> Result<()> {
        let mut conn = self.conn();
        let _: () = conn.hset(self.jd_key(kind), id, json).await?;
        Ok(())
    }

    /// Record `id` of `kind`, as stored.
    pub async fn jd_get(&self, kind: RecordKind, id: &str) -> Result<Option<String>> {
        let mut conn = self.conn();
        Ok(conn.hget(self.jd_key(kind), id).await?)
    }

    /// Every record of `kind`.
    pub async fn jd_all(&self, kind: RecordKind) -> Result<Vec<String>> {
        let mut conn = self.conn();
        Ok(conn.hvals(self.jd_key(kind)).await?)
    }

    /// Replaces record `id` with `new` if it still is `old`; false if it changed meanwhile.
    pub async fn jd_swap(&self, kind: RecordKind, id: &str, old: &str, new: &str) -> Result<bool> {
        let mut invocation = JD_SWAP.prepare_invoke();
        invocation.key(self.jd_key(kind)).arg(id).arg(old).arg(new);
        let mut conn = self.conn();
        let swapped: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(swapped == 1)
    }

    /// The id `field` of `index` points to.
    pub async fn jd_lookup(&self, index: UniqueIndex, field: &str) -> Result<Option<String>> {
        let mut conn = self.conn();
        Ok(conn.hget(self.jd_index_key(index), field).await?)
    }

    /// Points `field` of `index` to `id` if it is free; false if taken.
    pub async fn jd_claim_index(&self, index: UniqueIndex, field: &str, id: &str) -> Result<bool> {
        let mut conn = self.conn();
        Ok(conn.hset_nx(self.jd_index_key(index), field, id).await?)
    }

    /// Removes `field` from `index`.
    pub async fn jd_release_index(&self, index: UniqueIndex, field: &str) -> Result<()> {
        let mut conn = self.conn();
        let _: () = conn.hdel(self.jd_index_key(index), field).await?;
        Ok(())
    }

    /// The stored CSA keypair record, storing `candidate` first if there is none yet (so
    /// every node of a deployment agrees on one keypair).
    pub async fn jd_keypair(&self, candidate: &str) -> Result<String> {
        let key = self.jd_keypair_key();
        let mut conn = self.conn();
        let _: bool = conn.set_nx(&key, candidate).await?;
        let stored: Option<String> = conn.get(&key).await?;
        Ok(stored.unwrap_or_else(|| candidate.to_owned()))
    }

    fn jd_keypair_key(&self) -> String {
        format!("{}jd:csa", self.keys.prefix())
    }

    /// Replaces the keypair record with `new` if it still is `old`; false if it changed.
    pub async fn jd_keypair_swap(&self, old: &str, new: &str) -> Result<bool> {
        let mut invocation = JD_KEYPAIR_SWAP.prepare_invoke();
        invocation.key(self.jd_keypair_key()).arg(old).arg(new);
        let mut conn = self.conn();
        let swapped: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(swapped == 1)
    }

    fn jd_session_keys(&self) -> (String, String) {
        let prefix = self.keys.prefix();
        (
            format!("{prefix}jd:session"),
            format!("{prefix}jd:session:seen"),
        )
    }

    fn jd_outbox_key(&self, node_id: &str) -> String {
        format!("{}jd:outbox:{node_id}", self.keys.prefix())
    }

    /// Records `session` as the one holding Chainlink node `node_id`'s connection, taking
    /// over from any older session (which then learns it at its next
    /// [`Store::jd_session_touch`]).
    pub async fn jd_session_open(&self, node_id: &str, session: &str) -> Result<()> {
        let (sessions, seen) = self.jd_session_keys();
        let mut conn = self.conn();
        redis::pipe()
            .atomic()
            .hset(&sessions, node_id, session)
            .hset(&seen, node_id, crate::now_ms())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Marks `session` alive now; false when another session has taken the node over (or
    /// it was closed), and this one must go.
    pub async fn jd_session_touch(&self, node_id: &str, session: &str) -> Result<bool> {
        self.jd_session(node_id, session, "touch").await
    }

    /// Forgets `session`, unless another session has taken the node over meanwhile.
    pub async fn jd_session_close(&self, node_id: &str, session: &str) -> Result<()> {
        self.jd_session(node_id, session, "close").await.map(drop)
    }

    async fn jd_session(&self, node_id: &str, session: &str, action: &str) -> Result<bool> {
        let (sessions, seen) = self.jd_session_keys();
        let mut invocation = JD_SESSION.prepare_invoke();
        invocation
            .key(sessions)
            .key(seen)
            .arg(node_id)
            .arg(session)
            .arg(action)
            .arg(crate::now_ms());
        let mut conn = self.conn();
        let held: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(held == 1)
    }

    /// When Chainlink node `node_id`'s session last proved alive (Unix ms), if it has one.
    pub async fn jd_session_seen(&self, node_id: &str) -> Result<Option<u64>> {
        let (_, seen) = self.jd_session_keys();
        let mut conn = self.conn();
        Ok(conn.hget(seen, node_id).await?)
    }

    /// Queues `command` for Chainlink node `node_id`'s session and wakes whichever jobhost
    /// node holds it.
    pub async fn jd_outbox_push(&self, node_id: &str, command: &str) -> Result<()> {
        let mut conn = self.conn();
        redis::pipe()
            .rpush(self.jd_outbox_key(node_id), command)
            .ignore()
            .publish(self.keys.events(), format!("jd {node_id}"))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The oldest command waiting for node `node_id`'s session.
    pub async fn jd_outbox_head(&self, node_id: &str) -> Result<Option<String>> {
        let mut conn = self.conn();
        Ok(conn.lindex(self.jd_outbox_key(node_id), 0).await?)
    }

    /// Removes `command` from the head of node `node_id`'s outbox once it is done; false if
    /// the head is another command.
    pub async fn jd_outbox_pop(&self, node_id: &str, command: &str) -> Result<bool> {
        let mut invocation = JD_OUTBOX_POP.prepare_invoke();
        invocation.key(self.jd_outbox_key(node_id)).arg(command);
        let mut conn = self.conn();
        let popped: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(popped == 1)
    }
}
