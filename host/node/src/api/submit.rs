//! Submitting a job, shared by every API: the plugin validates the spec, then the store
//! enqueues it. Each API maps [`SubmitError`] to its own status codes.

use std::collections::HashMap;

use jobhost_runtime::{Runtime, VALIDATE_SHARED_CALLS, ValidateError};
use jobhost_store::{Enqueued, NewJob, Store, StoreError};

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
    /// No validate slot came free in time.
    #[error(
        "no instance was free to check the spec in time (runtime.validate_slots, \
         runtime.validate_per_plugin, runtime.validate_timeout_ms); retry shortly"
    )]
    Busy,
    /// The job type needs something this host cannot provide.
    #[error("{0}")]
    Unavailable(String),
    /// Plugins are still compiling and none serves the job type yet: retry shortly.
    #[error("{0}")]
    Compiling(String),
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
            e @ ValidateError::Compiling { .. } => SubmitError::Compiling(e.to_string()),
            ValidateError::Unavailable(message) => SubmitError::Unavailable(message),
        }
    }
}

/// Validates `job` with its plugin and enqueues it. Returns what was written (the id, and
/// whether it is new: false when an idempotency key returned an earlier job).
pub async fn submit(
    store: &Store,
    runtime: &Runtime,
    job: &NewJob,
) -> Result<Enqueued, SubmitError> {
    validate(runtime, job).await?;
    let mut answers = store.enqueue_batch(std::slice::from_ref(job)).await?;
    enqueued(answers.pop().expect("one answer per job"), job)
}

/// Validates each of `jobs` with its plugin (a few at a time) and enqueues those that pass
/// in one store call. One answer per job, in order; the outer error is the store failing
/// the whole batch (nothing of it was written).
pub async fn submit_batch(
    store: &Store,
    runtime: &Runtime,
    jobs: &[NewJob],
) -> Result<Vec<Result<Enqueued, SubmitError>>, SubmitError> {
    let checks = validate_batch(runtime, jobs).await;
    let valid: Vec<NewJob> = jobs
        .iter()
        .zip(&checks)
        .filter(|(_, check)| check.is_ok())
        .map(|(job, _)| job.clone())
        .collect();
    let mut written = store.enqueue_batch(&valid).await?.into_iter();
    Ok(checks
        .into_iter()
        .zip(jobs)
        .map(|(check, job)| {
            check?;
            enqueued(written.next().expect("one answer per valid job"), job)
        })
        .collect())
}

/// `job`'s spec checked by its plugin.
async fn validate(runtime: &Runtime, job: &NewJob) -> Result<(), SubmitError> {
    runtime
        .validate(&job.job_type, &job.spec)
        .await
        .map_err(|e| SubmitError::from_validate(e, job, runtime))
}

/// Each of `jobs` checked by its plugin, in order. The specs of one job type go in groups
/// that share an instance ([`Runtime::validate_many`]: they are one caller's), a few groups
/// at a time.
async fn validate_batch(runtime: &Runtime, jobs: &[NewJob]) -> Vec<Result<(), SubmitError>> {
    // Positions in `jobs` by job type, types in order of first appearance.
    let mut types: HashMap<&str, usize> = HashMap::new();
    let mut positions: Vec<Vec<usize>> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let t = *types.entry(&job.job_type).or_insert_with(|| {
            positions.push(Vec::new());
            positions.len() - 1
        });
        positions[t].push(i);
    }
    let groups: Vec<&[usize]> = positions
        .iter()
        .flat_map(|p| p.chunks(VALIDATE_SHARED_CALLS))
        .collect();
    let mut checks: Vec<Option<Result<(), SubmitError>>> = jobs.iter().map(|_| None).collect();
    // Waves and a loop, not a stream of closures: the handler's future must be `Send` for
    // any lifetime, which closures over `&NewJob` do not prove to the compiler.
    for wave in groups.chunks(VALIDATE_AT_ONCE) {
        let mut calls = Vec::with_capacity(wave.len());
        for group in wave {
            calls.push(validate_group(runtime, jobs, group));
        }
        for (group, answers) in wave.iter().zip(futures::future::join_all(calls).await) {
            for (&i, answer) in group.iter().zip(answers) {
                checks[i] = Some(answer);
            }
        }
    }
    checks
        .into_iter()
        .map(|check| check.expect("every job is in one group"))
        .collect()
}

/// The jobs of `jobs` at `group` (all of one type), checked on a shared instance.
async fn validate_group(
    runtime: &Runtime,
    jobs: &[NewJob],
    group: &[usize],
) -> Vec<Result<(), SubmitError>> {
    let job_type = &jobs[group[0]].job_type;
    let specs: Vec<&str> = group.iter().map(|&i| jobs[i].spec.as_str()).collect();
    let answers = runtime.validate_many(job_type, &specs).await;
    group
        .iter()
        .zip(answers)
        .map(|(&i, answer)| answer.map_err(|e| SubmitError::from_validate(e, &jobs[i], runtime)))
        .collect()
}

/// Groups of one batch validated at once: enough to overlap plugin calls, few enough that
/// one batch leaves instance slots for other callers.
const VALIDATE_AT_ONCE: usize = 4;

/// The store's answer for `job` as the API reports it.
fn enqueued(answer: Result<Enqueued, StoreError>, job: &NewJob) -> Result<Enqueued, SubmitError> {
    answer.map_err(|e| match e {
        StoreError::QueueFull { .. } => {
            crate::metrics::global().job_refused(&job.job_type, "queue_full");
            SubmitError::QueueFull(e.to_string())
        }
        e => SubmitError::Store(e),
    })
}

/// The job types this node serves, for messages.
pub fn served_types(runtime: &Runtime) -> String {
    /// Most types an error names; `ListPlugins` has them all.
    const SHOWN: usize = 20;
    let types = runtime.job_types();
    match types.len() {
        0 => "none".into(),
        n if n <= SHOWN => types.join(", "),
        n => format!(
            "{}, and {} more (ListPlugins)",
            types[..SHOWN].join(", "),
            n - SHOWN
        ),
    }
}
