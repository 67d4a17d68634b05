//! Host nodes' registrations: heartbeats with a TTL, so a dead node disappears by itself.
//!
//! Keys: `node:<id>`, `nodes`.

use std::time::Duration;

use redis::AsyncCommands;

use crate::{NodeInfo, Result, Store, millis, now_ms};

impl Store {
    /// Registers or refreshes a host node; the registration expires after `ttl`.
    pub async fn heartbeat(&self, node: &NodeInfo, ttl: Duration) -> Result<()> {
        let json = serde_json::to_string(node).expect("node info serializes");
        let expires = now_ms() + millis(ttl);
        let mut conn = self.conn();
        let _: () = redis::pipe()
            .set_ex(self.keys.node(&node.id), json, ttl.as_secs().max(1))
            .zadd(self.keys.nodes(), &node.id, expires)
            .zrembyscore(self.keys.nodes(), 0, now_ms())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes a node's registration (graceful shutdown).
    pub async fn deregister(&self, node_id: &str) -> Result<()> {
        let mut conn = self.conn();
        let _: () = redis::pipe()
            .del(self.keys.node(node_id))
            .zrem(self.keys.nodes(), node_id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Nodes whose registration has not expired.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn
            .zrangebyscore(self.keys.nodes(), now_ms(), "+inf")
            .await?;
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            let json: Option<String> = conn.get(self.keys.node(&id)).await?;
            if let Some(node) = json.and_then(|j| serde_json::from_str(&j).ok()) {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }
}
