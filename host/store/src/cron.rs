//! Cron schedules and the leader that fires them: one elected node holds a lease with a
//! fencing token, so an expired leader cannot fire a schedule twice.
//!
//! Keys: `cron`, `cron:next`, `leader`, `leader:token`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script};

use crate::{CronSchedule, Result, Store, millis};

static LEADER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/leader.lua")));
static RESIGN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/resign.lua")));
static ADVANCE_CRON: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/advance_cron.lua")));

impl Store {
    /// Takes or keeps the leader lease for `node`. Returns the fencing token while leading.
    pub async fn lead(&self, node: &str, ttl: Duration) -> Result<Option<u64>> {
        let mut invocation = LEADER.prepare_invoke();
        invocation
            .key(self.keys.leader())
            .key(self.keys.leader_token())
            .arg(node)
            .arg(millis(ttl));
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Gives up the leader lease if `node` holds it.
    pub async fn resign(&self, node: &str, token: u64) -> Result<()> {
        let mut invocation = RESIGN.prepare_invoke();
        invocation
            .key(self.keys.leader())
            .arg(format!("{node} {token}"));
        let mut conn = self.conn();
        let _: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Adds or replaces a cron schedule; its first fire is `first_fire_ms`.
    pub async fn put_cron(&self, cron: &CronSchedule, first_fire_ms: u64) -> Result<()> {
        let json = serde_json::to_string(cron).expect("cron serializes");
        let mut conn = self.conn();
        let _: () = redis::pipe()
            .atomic()
            .hset(self.keys.cron(), &cron.name, json)
            .zadd(self.keys.cron_next(), &cron.name, first_fire_ms)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes a cron schedule. Returns whether it existed.
    pub async fn delete_cron(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let (removed, _): (u32, u32) = redis::pipe()
            .atomic()
            .hdel(self.keys.cron(), name)
            .zrem(self.keys.cron_next(), name)
            .query_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    /// Cron schedules due at `now_ms`, with the fire time each is due for.
    pub async fn due_crons(&self, now_ms: u64) -> Result<Vec<(CronSchedule, u64)>> {
        let mut conn = self.conn();
        let due: Vec<(String, u64)> = conn
            .zrangebyscore_withscores(self.keys.cron_next(), 0, now_ms)
            .await?;
        let mut out = Vec::with_capacity(due.len());
        for (name, at) in due {
            let json: Option<String> = conn.hget(self.keys.cron(), &name).await?;
            let Some(json) = json else { continue };
            match serde_json::from_str(&json) {
                Ok(cron) => out.push((cron, at)),
                // One bad definition must not stop the others from firing.
                Err(e) => tracing::error!(cron = %name, "unreadable cron schedule skipped: {e}"),
            }
        }
        Ok(out)
    }

    /// Moves cron `name` from fire `due_ms` to `next_ms`, fenced by the leader token.
    /// Returns false if this node no longer leads or the fire was already handled.
    pub async fn advance_cron(
        &self,
        node: &str,
        token: u64,
        name: &str,
        due_ms: u64,
        next_ms: u64,
    ) -> Result<bool> {
        let mut invocation = ADVANCE_CRON.prepare_invoke();
        invocation
            .key(self.keys.leader())
            .key(self.keys.cron_next())
            .arg(format!("{node} {token}"))
            .arg(name)
            .arg(due_ms)
            .arg(next_ms);
        let mut conn = self.conn();
        let advanced: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(advanced == 1)
    }
}
