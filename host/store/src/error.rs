//! What can go wrong talking to the store.

/// Errors talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A record in Redis does not have the expected shape.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A value given to the store is out of range.
    #[error("invalid {0}")]
    Invalid(String),
    /// The job type already has as many waiting jobs (QUEUED + SCHEDULED) as its limit.
    #[error(
        "queue for job type {job_type:?} is full: {waiting} jobs waiting, the limit is {limit} ({knob})"
    )]
    QueueFull {
        /// The job type.
        job_type: String,
        /// Jobs of the type waiting (QUEUED + SCHEDULED).
        waiting: u64,
        /// The limit.
        limit: u64,
        /// The configuration knob that sets the limit.
        knob: String,
    },
}

impl StoreError {
    /// True when the error means Redis is unreachable (worth retrying later).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(e) => unavailable(e),
            _ => false,
        }
    }
}

/// True when `e` means Redis cannot serve now (down, unreachable, loading its data, failing
/// over) rather than that the request was wrong.
pub(crate) fn unavailable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        )
}
