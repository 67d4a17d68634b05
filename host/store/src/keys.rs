//! Names of every Redis key (see the table in the module above).

/// Builds keys under one prefix and Cluster hash tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys for deployment `prefix` (letters, digits, `-`, `_`, `.` are safe).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: format!("{prefix}:{{{prefix}}}:"),
        }
    }

    /// The common prefix, hash tag included (scripts build per-job keys from it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// A job's record.
    pub fn job(&self, id: &str) -> String {
        self.key(&format!("job:{id}"))
    }
    /// A job's finished attempts.
    pub fn attempts(&self, id: &str) -> String {
        self.key(&format!("attempts:{id}"))
    }
    /// A job's log stream.
    pub fn log(&self, id: &str) -> String {
        self.key(&format!("log:{id}"))
    }
    /// The ready queue of a job type.
    pub fn queue(&self, job_type: &str) -> String {
        self.key(&format!("queue:{job_type}"))
    }
    /// RUNNING jobs of a job type (a set of ids): what its concurrency limit counts.
    pub fn running_of(&self, job_type: &str) -> String {
        self.key(&format!("running:{job_type}"))
    }
    /// SCHEDULED jobs of a job type (a set of ids): with its ready queue, what its queue
    /// limit counts.
    pub fn scheduled_of(&self, job_type: &str) -> String {
        self.key(&format!("scheduled:{job_type}"))
    }
    /// Job types held back by their concurrency limit while jobs wait (hash, type → 1).
    pub fn limited(&self) -> String {
        self.key("limited")
    }
    /// The FIFO sequence counter.
    pub fn seq(&self) -> String {
        self.key("seq")
    }
    /// Scheduled jobs by run-at time.
    pub fn delayed(&self) -> String {
        self.key("delayed")
    }
    /// Running jobs by lease deadline, as nodes before 0.2 kept leases (per job); reaped
    /// until empty.
    pub fn running(&self) -> String {
        self.key("running")
    }
    /// Node leases: node id → lease deadline ms.
    pub fn leases(&self) -> String {
        self.key("leases")
    }
    /// Dead jobs.
    pub fn dead(&self) -> String {
        self.key("dead")
    }
    /// SUCCEEDED jobs by finish time: what their retention (age and count) trims.
    pub fn succeeded(&self) -> String {
        self.key("succeeded")
    }
    /// The history outbox: ended jobs waiting to be archived, score = finish time.
    pub fn archive(&self) -> String {
        self.key("archive")
    }
    /// How many ended jobs found the history outbox full (not archived).
    pub fn archive_overflow(&self) -> String {
        self.key("archive:overflow")
    }
    /// Which node drains the history outbox: `<node>`, expiring unless renewed.
    pub fn archive_lease(&self) -> String {
        self.key("archive:lease")
    }
    /// Index of all jobs by creation time.
    pub fn jobs(&self) -> String {
        self.key("jobs")
    }
    /// An idempotency key.
    pub fn idempotency(&self, key: &str) -> String {
        self.key(&format!("idem:{key}"))
    }
    /// Where the index sweep resumes.
    pub fn sweep_cursor(&self) -> String {
        self.key("sweep:cursor")
    }
    /// Cron definitions.
    pub fn cron(&self) -> String {
        self.key("cron")
    }
    /// Cron next-fire times.
    pub fn cron_next(&self) -> String {
        self.key("cron:next")
    }
    /// A node's registration.
    pub fn node(&self, id: &str) -> String {
        self.key(&format!("node:{id}"))
    }
    /// Live nodes by heartbeat expiry.
    pub fn nodes(&self) -> String {
        self.key("nodes")
    }
    /// The leader lease.
    pub fn leader(&self) -> String {
        self.key("leader")
    }
    /// The fencing token counter.
    pub fn leader_token(&self) -> String {
        self.key("leader:token")
    }
    /// The event channel.
    pub fn events(&self) -> String {
        self.key("events")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("jh");
        assert_eq!(keys.job("a"), "jh:{jh}:job:a");
        assert_eq!(keys.queue("noop"), "jh:{jh}:queue:noop");
        assert_eq!(keys.running_of("noop"), "jh:{jh}:running:noop");
        for key in [
            keys.delayed(),
            keys.running(),
            keys.log("x"),
            keys.nodes(),
            keys.scheduled_of("t"),
            keys.limited(),
        ] {
            assert!(key.starts_with("jh:{jh}:"), "{key}");
        }
    }
}
