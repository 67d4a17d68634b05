//! The node's Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! Two kinds: what this node counts as it works (attempts by type and outcome, their
//! durations, retries, Redis call latency, busy worker slots), kept in process; and what the
//! cluster looks like, read from Redis and the runtime when scraped (queue depth and the
//! age of the next job per type, running, scheduled and dead jobs, live nodes, plugins,
//! instances in use). Counters are per node: sum them across nodes in queries.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set of one label.
type One = [(&'static str, String); 1];
/// Label set of two labels.
type Two = [(&'static str, String); 2];
/// Histograms of one label.
type Histograms = Family<One, Histogram, fn() -> Histogram>;

/// Every metric of the node.
#[derive(Debug)]
pub struct Metrics {
    attempts: Family<Two, Counter>,
    durations: Histograms,
    retries: Family<One, Counter>,
    refused: Family<Two, Counter>,
    redis_latency: Histogram,
    busy_slots: Gauge<i64, AtomicI64>,
    slots: Gauge<i64, AtomicI64>,
    queue_depth: Family<One, Gauge>,
    queue_age: Family<One, Gauge<f64, AtomicU64>>,
    jobs: Family<One, Gauge>,
    dead: Gauge,
    nodes: Gauge,
    plugins: Family<One, Gauge>,
    instances_in_use: Gauge,
    instance_slots: Gauge,
    instances_kept: Gauge,
    cluster_view_up: Gauge,
    stream_snapshots: Counter,
    history: HistoryMetrics,
    /// Attempts finished, all types (see [`Metrics::attempts_finished`]).
    finished: AtomicU64,
    /// The per-type handles of `attempt_finished`, looked up in the families once per type
    /// and outcome rather than per attempt (a family lookup builds its label set).
    attempt_handles: std::sync::RwLock<HandlesByType>,
}

/// The job history's drain (see `history.rs`).
#[derive(Debug)]
struct HistoryMetrics {
    outbox: Gauge,
    overflow: Counter,
    archived: Counter,
    refused: Counter,
    up: Gauge,
    batch_seconds: Histogram,
}

impl Default for HistoryMetrics {
    fn default() -> Self {
        HistoryMetrics {
            outbox: Gauge::default(),
            overflow: Counter::default(),
            archived: Counter::default(),
            refused: Counter::default(),
            up: Gauge::default(),
            // 1 ms to ~16 s.
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

/// Job type → outcome → handles.
type HandlesByType =
    std::collections::HashMap<String, std::collections::HashMap<&'static str, AttemptHandles>>;

/// What one finished attempt of a type and outcome updates.
#[derive(Debug, Clone)]
struct AttemptHandles {
    attempts: Counter,
    durations: Histogram,
    retries: Option<Counter>,
}

fn job_durations() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            attempts: Family::default(),
            durations: Family::new_with_constructor(job_durations),
            retries: Family::default(),
            refused: Family::default(),
            // 100 µs to ~1.6 s.
            redis_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            busy_slots: Gauge::default(),
            slots: Gauge::default(),
            queue_depth: Family::default(),
            queue_age: Family::default(),
            jobs: Family::default(),
            dead: Gauge::default(),
            nodes: Gauge::default(),
            plugins: Family::default(),
            instances_in_use: Gauge::default(),
            instance_slots: Gauge::default(),
            instances_kept: Gauge::default(),
            cluster_view_up: Gauge::default(),
            stream_snapshots: Counter::default(),
            history: HistoryMetrics::default(),
            finished: AtomicU64::new(0),
            attempt_handles: Default::default(),
        }
    }

    /// Records a finished attempt of `job_type` run by this node.
    pub fn attempt_finished(&self, job_type: &str, outcome: &'static str, took: Duration) {
        self.finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handles = self.attempt_handles(job_type, outcome);
        handles.attempts.inc();
        handles.durations.observe(took.as_secs_f64());
        if let Some(retries) = &handles.retries {
            retries.inc();
        }
    }

    fn attempt_handles(&self, job_type: &str, outcome: &'static str) -> AttemptHandles {
        let cache = self
            .attempt_handles
            .read()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(handles) = cache.get(job_type).and_then(|by| by.get(outcome)) {
            return handles.clone();
        }
        drop(cache);
        let handles = AttemptHandles {
            attempts: self
                .attempts
                .get_or_create(&[
                    ("type", job_type.to_owned()),
                    ("outcome", outcome.to_owned()),
                ])
                .clone(),
            durations: self
                .durations
                .get_or_create(&[("type", job_type.to_owned())])
                .clone(),
            retries: (outcome == "retry" || outcome == "crashed").then(|| {
                self.retries
                    .get_or_create(&[("type", job_type.to_owned())])
                    .clone()
            }),
        };
        self.attempt_handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(job_type.to_owned())
            .or_default()
            .insert(outcome, handles.clone());
        handles
    }

    /// Records a new job of `job_type` this node refused for a per-type limit (`reason`:
    /// `queue_full`).
    pub fn job_refused(&self, job_type: &str, reason: &str) {
        self.refused
            .get_or_create(&[("type", job_type.to_owned()), ("reason", reason.to_owned())])
            .inc();
    }

    /// Records a batch this node archived (`took`: the PostgreSQL write).
    pub fn history_batch(&self, archived: usize, took: Duration) {
        let h = &self.history;
        h.archived.inc_by(archived as u64);
        h.batch_seconds.observe(took.as_secs_f64());
    }

    /// Records jobs that leave the outbox unarchived (refused by the database, or records
    /// that cannot be read).
    pub fn history_refused(&self, jobs: usize) {
        self.history.refused.inc_by(jobs as u64);
    }

    /// Records the outbox as last read: jobs waiting, and the deployment's overflow count
    /// (the counter follows it up).
    pub fn history_outbox(&self, waiting: u64, overflow: u64) {
        let h = &self.history;
        h.outbox.set(i64::try_from(waiting).unwrap_or(i64::MAX));
        let seen = h.overflow.get();
        if overflow > seen {
            h.overflow.inc_by(overflow - seen);
        }
    }

    /// Records whether the history's database answered the last query.
    pub fn history_up(&self, up: bool) {
        self.history.up.set(i64::from(up));
    }

    /// Records one snapshot made for the open `/v1/stream` streams.
    pub fn stream_snapshot(&self) {
        self.stream_snapshots.inc();
    }

    /// Records the time of one Redis request (a command, script or pipeline).
    pub fn redis_call(&self, took: Duration) {
        self.redis_latency.observe(took.as_secs_f64());
    }

    /// Records how many of the worker's `slots` are running jobs.
    pub fn worker_slots(&self, busy: usize, slots: usize) {
        self.busy_slots.set(i64::try_from(busy).unwrap_or(i64::MAX));
        self.slots.set(i64::try_from(slots).unwrap_or(i64::MAX));
    }

    /// Attempts this node has finished since it started, all types together (the archive
    /// drain defers to the job path while this grows).
    pub fn attempts_finished(&self) -> u64 {
        self.finished.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the values read when scraping. Without `cluster` (Redis unreachable) the
    /// cluster-wide values keep their last reading and `jobhost_cluster_view_up` is 0, so a
    /// scrape never reports an empty cluster that is merely out of sight.
    pub fn set_view(&self, local: &LocalView, cluster: Option<&ClusterView>) {
        self.plugins.clear();
        for (status, count) in [
            ("loaded", local.plugins_loaded),
            ("rejected", local.plugins_rejected),
            ("compiling", local.plugins_compiling),
        ] {
            self.plugins
                .get_or_create(&[("status", status.to_owned())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.instances_in_use
            .set(i64::try_from(local.instances_in_use).unwrap_or(i64::MAX));
        self.instance_slots
            .set(i64::try_from(local.instance_slots).unwrap_or(i64::MAX));
        self.instances_kept
            .set(i64::try_from(local.instances_kept).unwrap_or(i64::MAX));
        self.cluster_view_up.set(i64::from(cluster.is_some()));
        let Some(view) = cluster else {
            return;
        };
        self.queue_depth.clear();
        self.queue_age.clear();
        for queue in &view.queues {
            let labels = [("type", queue.job_type.clone())];
            self.queue_depth
                .get_or_create(&labels)
                .set(i64::try_from(queue.depth).unwrap_or(i64::MAX));
            self.queue_age
                .get_or_create(&labels)
                .set(queue.next_age.as_secs_f64());
        }
        for (state, count) in [("running", view.running), ("scheduled", view.scheduled)] {
            self.jobs
                .get_or_create(&[("state", state.to_owned())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.dead.set(i64::try_from(view.dead).unwrap_or(i64::MAX));
        self.nodes
            .set(i64::try_from(view.nodes).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("jobhost");
        registry.register(
            "job_attempts",
            "Job attempts this node finished, by job type and outcome (succeeded, failed, retry, crashed, cancelled, interrupted)",
            self.attempts.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Duration of the job attempts this node ran, by job type",
            self.durations.clone(),
        );
        registry.register(
            "job_retries",
            "Attempts this node ended with a retry (asked for or after a crash), by job type",
            self.retries.clone(),
        );
        registry.register(
            "jobs_refused",
            "New jobs this node refused for a per-type limit, by job type and reason (queue_full)",
            self.refused.clone(),
        );
        registry.register(
            "stream_snapshots",
            "Snapshots this node made for /v1/stream: one a second while any stream is open, shared by all of them",
            self.stream_snapshots.clone(),
        );
        let h = &self.history;
        registry.register(
            "history_outbox_jobs",
            "Finished jobs waiting in Redis to be archived in PostgreSQL (history.outbox_max at most), cluster-wide",
            h.outbox.clone(),
        );
        registry.register(
            "history_overflow",
            "Finished jobs that found the history outbox full and were not archived (kept their Redis retention), cluster-wide since the deployment began",
            h.overflow.clone(),
        );
        registry.register(
            "history_archived",
            "Jobs this node wrote to the job history",
            h.archived.clone(),
        );
        registry.register(
            "history_refused",
            "Jobs that left the history outbox unarchived: refused by the database on their own, or records that could not be read (each logged with the reason)",
            h.refused.clone(),
        );
        registry.register(
            "history_up",
            "1 when the job history's database answered this node's last query, 0 when not or when the history is off",
            h.up.clone(),
        );
        registry.register(
            "history_batch_seconds",
            "Time of this node's archive writes (one transaction per batch)",
            h.batch_seconds.clone(),
        );
        registry.register(
            "redis_request_duration_seconds",
            "Time of this node's Redis requests (commands, scripts, pipelines)",
            self.redis_latency.clone(),
        );
        registry.register(
            "worker_busy_slots",
            "Jobs this node is running now",
            self.busy_slots.clone(),
        );
        registry.register(
            "worker_slots",
            "Jobs this node runs at most at once (worker.concurrency)",
            self.slots.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs ready to run (QUEUED), by job type, cluster-wide",
            self.queue_depth.clone(),
        );
        registry.register(
            "queue_next_age_seconds",
            "How long the next job to run of each type has been waiting since it was created",
            self.queue_age.clone(),
        );
        registry.register(
            "jobs",
            "Jobs RUNNING and SCHEDULED (delayed or waiting for a retry), cluster-wide",
            self.jobs.clone(),
        );
        registry.register(
            "dead_jobs",
            "Jobs whose retries ran out (DEAD), cluster-wide",
            self.dead.clone(),
        );
        registry.register(
            "nodes_live",
            "Host nodes with a live heartbeat, cluster-wide",
            self.nodes.clone(),
        );
        registry.register(
            "plugins",
            "Plugin ids in this node's folder, by status (loaded, rejected)",
            self.plugins.clone(),
        );
        registry.register(
            "instances_in_use",
            "Plugin instances alive on this node now",
            self.instances_in_use.clone(),
        );
        registry.register(
            "cluster_view_up",
            "1 when the last scrape read the cluster-wide values from Redis, 0 when it could not (they keep their last reading)",
            self.cluster_view_up.clone(),
        );
        registry.register(
            "instance_slots",
            "Plugin instances this node may have at once (runtime.max_instances)",
            self.instance_slots.clone(),
        );
        registry.register(
            "instances_kept",
            "Plugin instances kept between attempts (plugins.<id>.reuse), waiting or running",
            self.instances_kept.clone(),
        );
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// What this node knows of itself when scraped.
#[derive(Debug, Clone, Default)]
pub struct LocalView {
    /// Loaded plugin ids.
    pub plugins_loaded: usize,
    /// Rejected plugin ids.
    pub plugins_rejected: usize,
    /// Plugin ids whose first build is being compiled.
    pub plugins_compiling: usize,
    /// Plugin instances alive.
    pub instances_in_use: usize,
    /// Plugin instances allowed.
    pub instance_slots: usize,
    /// Plugin instances kept between attempts (`plugins.<id>.reuse`).
    pub instances_kept: usize,
}

/// The cluster as read from Redis when scraping.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Ready queues of the job types this node serves.
    pub queues: Vec<QueueView>,
    /// RUNNING jobs.
    pub running: u64,
    /// SCHEDULED jobs.
    pub scheduled: u64,
    /// DEAD jobs.
    pub dead: u64,
    /// Live host nodes.
    pub nodes: u64,
}

/// One job type's ready queue.
#[derive(Debug, Clone, Default)]
pub struct QueueView {
    /// The job type.
    pub job_type: String,
    /// Jobs in it.
    pub depth: u64,
    /// How long its next job has waited since creation (zero when empty).
    pub next_age: Duration,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_and_queues_render_as_openmetrics() {
        let m = Metrics::new();
        m.attempt_finished("hello", "succeeded", Duration::from_millis(3));
        m.attempt_finished("hello", "retry", Duration::from_millis(3));
        m.job_refused("hello", "queue_full");
        let cluster = ClusterView {
            queues: vec![QueueView {
                job_type: "hello".into(),
                depth: 7,
                next_age: Duration::from_secs(2),
            }],
            dead: 1,
            ..ClusterView::default()
        };
        m.set_view(&LocalView::default(), Some(&cluster));
        let text = m.render();
        assert!(
            text.contains(r#"jobhost_job_attempts_total{type="hello",outcome="succeeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jobhost_job_retries_total{type="hello"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jobhost_job_duration_seconds_count{type="hello"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jobhost_queue_depth{type="hello"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jobhost_queue_next_age_seconds{type="hello"} 2.0"#),
            "{text}"
        );
        assert!(text.contains("jobhost_dead_jobs 1"), "{text}");
        assert!(
            text.contains(r#"jobhost_jobs_refused_total{type="hello",reason="queue_full"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        // Redis out of sight: the last reading stays, flagged.
        m.set_view(&LocalView::default(), None);
        let text = m.render();
        assert!(text.contains("jobhost_dead_jobs 1"), "{text}");
        assert!(text.contains("jobhost_cluster_view_up 0"), "{text}");
    }
}
