//! The store's lifecycle cases against a real 3-shard Redis Cluster: every key of a
//! deployment shares one hash slot, so the same scripts run unchanged.

mod common;
mod store_cases;

use common::*;

macro_rules! against_a_cluster {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let cluster = TestCluster::start().await;
            store_cases::$case(&cluster.url()).await;
        }
    )*};
}

against_a_cluster!(
    lifecycle_queued_running_succeeded_with_attempt_history,
    claims_only_the_types_asked_for_by_priority_then_fifo,
    retries_back_off_then_dead_letter,
    delayed_jobs_wait_for_their_time,
    an_idempotency_key_returns_the_same_job,
    cancel_queued_scheduled_and_running_jobs,
    an_expired_lease_requeues_the_job_and_fences_the_old_node,
    an_interrupted_attempt_is_requeued_without_counting,
    finished_jobs_expire_after_the_retention_time,
    log_stream_reads_from_the_start_and_resumes_from_a_cursor,
    the_leader_lease_is_exclusive_and_fences_cron_advances,
    host_nodes_register_expire_and_deregister,
    bad_input_is_refused_with_a_reason,
    the_sweep_passes_long_lived_jobs_and_clears_leftover_keys,
);
