//! Submitting a job, shared by every API: the plugin validates the spec, then the store
//! enqueues it. Each API maps [`SubmitError`] to its own status codes.

use jobhost_runtime::{Runtime, ValidateError};
use jobhost_store::{NewJob, Store, StoreError};

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No loaded plugin serves the job type.
    #[error("no loaded plugin serves job type `{job_type}` (served here: {served})")]
    NoPlugin {
        /// The type asked for.
        job_type: String,
        /// The types this node serves.
        served: String,
    },
    /// The plugin refused the spec.
    #[error("invalid spec for job type `{job_type}`: {message}")]
    Invalid {
        /// The job type.
        job_type: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin's `validate` crashed on this spec.
    #[error("the `{job_type}` plugin could not validate the spec: {reason}")]
    ValidateCrashed {
        /// The job type.
        job_type: String,
        /// What happened.
        reason: String,
    },
    /// Every instance slot stayed busy.
    #[error("all plugin instance slots are busy; retry shortly")]
    Busy,
    /// The job type needs something this host cannot provide.
    #[error("{0}")]
    Unavailable(String),
    /// The job type's queue limit is reached (`job_types.<type>.max_queued` or
    /// `worker.max_queued_per_type`); the message names the type, the limit and the knob.
    #[error("{0}")]
    QueueFull(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// The error for a failed `validate` of `job`.
    pub fn from_validate(error: ValidateError, job: &NewJob, runtime: &Runtime) -> SubmitError {
        match error {
            ValidateError::NoPlugin(job_type) => SubmitError::NoPlugin {
                job_type,
                served: served_types(runtime),
            },
            ValidateError::Invalid(message) => SubmitError::Invalid {
                job_type: job.job_type.clone(),
                message,
            },
            ValidateError::Crashed(reason) => SubmitError::ValidateCrashed {
                job_type: job.job_type.clone(),
                reason,
            },
            ValidateError::Busy => SubmitError::Busy,
            ValidateError::Unavailable(message) => SubmitError::Unavailable(message),
        }
    }
}

/// Validates `job` with its plugin and enqueues it. Returns the id and whether it is new
/// (false when an idempotency key returned an earlier job).
pub async fn submit(
    store: &Store,
    runtime: &Runtime,
    job: &NewJob,
) -> Result<(String, bool), SubmitError> {
    runtime
        .validate(&job.job_type, &job.spec)
        .await
        .map_err(|e| SubmitError::from_validate(e, job, runtime))?;
    store.enqueue(job).await.map_err(|e| match e {
        StoreError::QueueFull { .. } => {
            crate::metrics::global().job_refused(&job.job_type, "queue_full");
            SubmitError::QueueFull(e.to_string())
        }
        e => SubmitError::Store(e),
    })
}

/// The job types this node serves, for messages.
pub fn served_types(runtime: &Runtime) -> String {
    let types = runtime.job_types();
    if types.is_empty() {
        "none".into()
    } else {
        types.join(", ")
    }
}
