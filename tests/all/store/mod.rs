//! The Redis store: every state transition of a job, each case run against a real
//! redis-server (`store::single::*`) and a real 3-shard Redis Cluster (`store::cluster::*`)
//! from one list (every key of a deployment shares one hash slot, so the same scripts run
//! unchanged); and TLS to Redis.

mod cases;

use std::time::Duration;

use crate::common::*;
use jobhost_store::{Store, StoreOptions};

/// Each case of `cases` as a test against one redis-server and one against a cluster.
macro_rules! against_single_and_cluster {
    ($($case:ident),* $(,)?) => {
        /// The cases against one redis-server.
        mod single {
            use crate::common::TestRedis;
            $(
                #[tokio::test]
                async fn $case() {
                    let redis = TestRedis::start().await;
                    super::cases::$case(&redis.url()).await;
                }
            )*
        }
        /// The cases against a 3-shard Redis Cluster.
        mod cluster {
            use crate::common::TestCluster;
            $(
                #[tokio::test]
                async fn $case() {
                    let cluster = TestCluster::start().await;
                    super::cases::$case(&cluster.url()).await;
                }
            )*
        }
    };
}

against_single_and_cluster!(
    lifecycle_queued_running_succeeded_with_attempt_history,
    claims_only_the_types_asked_for_by_priority_then_fifo,
    retries_back_off_then_dead_letter,
    delayed_jobs_wait_for_their_time,
    an_idempotency_key_returns_the_same_job,
    cancel_queued_scheduled_and_running_jobs,
    an_expired_lease_requeues_the_job_and_fences_the_old_node,
    a_lost_nodes_jobs_are_requeued_once_as_a_set,
    a_live_nodes_forgotten_job_is_requeued_by_its_own_renewal,
    an_interrupted_attempt_is_requeued_without_counting,
    finished_jobs_expire_after_the_retention_time,
    a_succeeded_jobs_log_expires_with_it_when_an_attempt_logged,
    succeeded_jobs_beyond_the_count_are_deleted_as_new_ones_finish,
    a_batch_of_outcomes_is_recorded_at_once_and_a_stale_one_refused_alone,
    log_stream_reads_from_the_start_and_resumes_from_a_cursor,
    the_leader_lease_is_exclusive_and_fences_cron_advances,
    host_nodes_register_expire_and_deregister,
    bad_input_is_refused_with_a_reason,
    the_sweep_passes_long_lived_jobs_and_clears_leftover_keys,
    lost_attempts_do_not_use_up_the_failure_budget,
    a_records_id_and_time_of_last_change_follow_each_transition,
    every_way_a_job_ends_goes_through_the_history_outbox,
);

#[tokio::test]
async fn rediss_urls_connect_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let port = jobhost_store::free_port();
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--tls-cert-file")
        .arg(&cert_file)
        .arg("--tls-key-file")
        .arg(&key_file)
        .arg("--tls-ca-cert-file")
        .arg(&cert_file)
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("rediss://localhost:{port}");
    let options = |ca: Option<std::path::PathBuf>| StoreOptions {
        tls: jobhost_store::TlsFiles {
            ca_file: ca,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut connected = None;
    for _ in 0..100 {
        if let Ok(store) = Store::connect(&url, options(Some(cert_file.clone()))).await {
            connected = Some(store);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = connected.expect("TLS connection with the private CA");
    let (id, _) = store.enqueue(&new_job("noop", "over tls")).await.unwrap();
    assert_eq!(store.get(&id).await.unwrap().unwrap().spec, "over tls");
    // Without the CA the server's certificate is not trusted.
    assert!(Store::connect(&url, options(None)).await.is_err());
    // TLS files with a plain URL are a configuration mistake, said as such.
    let err = Store::connect(
        &format!("redis://localhost:{port}"),
        options(Some(cert_file.clone())),
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("not rediss://"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
}
