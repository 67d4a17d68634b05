//! A real `jobhost serve` process for API tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobhost::api::proto::job_scheduler_client::JobSchedulerClient;
use tonic::transport::Channel;

use super::install;

/// A real `jobhost serve` process on a free gRPC port, its log in a temp folder.
pub struct Server {
    child: Child,
    pub addr: String,
    /// The HTTP API's address.
    pub http_addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(redis_url: &str, plugins: &[&str]) -> Server {
        Server::start_with(redis_url, plugins, "").await
    }

    /// Like [`Server::start`], with extra TOML config (e.g. plugin grants).
    pub async fn start_with(redis_url: &str, plugins: &[&str], config: &str) -> Server {
        Server::start_with_env(redis_url, plugins, config, &[]).await
    }

    /// Like [`Server::start_with`], with extra environment variables for the server.
    pub async fn start_with_env(
        redis_url: &str,
        plugins: &[&str],
        config: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("jobhost.toml");
        std::fs::write(&config_file, config).unwrap();
        let plugin_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugin_dir).unwrap();
        install(&plugin_dir, plugins);
        let port = jobhost::store::free_port();
        let addr = format!("127.0.0.1:{port}");
        let http_addr = format!("127.0.0.1:{}", jobhost::store::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_jobhost"))
            .args(["--config", config_file.to_str().unwrap()])
            .args(["serve", "--plugins-dir", plugin_dir.to_str().unwrap()])
            .args([
                "--redis-url",
                redis_url,
                "--grpc-addr",
                &addr,
                "--http-addr",
                &http_addr,
            ])
            .env("JOBHOST_CACHE", "false")
            .env("JOBHOST_LOG", "warn")
            .envs(env.iter().copied())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("serve.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let server = Server {
            child,
            addr,
            http_addr,
            _dir: dir,
        };
        server.wait_serving().await;
        server
    }

    /// The plugins folder the server watches (files added to it load or are rejected live).
    pub fn plugins_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("plugins")
    }

    /// What the server has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("serve.log")).unwrap_or_default()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> JobSchedulerClient<Channel> {
        JobSchedulerClient::new(self.channel().await)
    }

    pub async fn health(&self) -> Option<i32> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .ok()?
            .connect()
            .await
            .ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest {
            service: "jobhost.v1.JobScheduler".into(),
        };
        Some(health.check(request).await.ok()?.into_inner().status)
    }

    pub async fn wait_health(&self, want: tonic_health::ServingStatus) {
        let start = Instant::now();
        while self.health().await != Some(want as i32) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "health never became {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_serving(&self) {
        self.wait_health(tonic_health::ServingStatus::Serving).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GetJob` until job `id` is in `state` (30 s at most) and returns it.
pub async fn wait_state(
    client: &mut JobSchedulerClient<Channel>,
    id: &str,
    state: jobhost::api::proto::JobState,
) -> jobhost::api::proto::Job {
    let start = Instant::now();
    loop {
        let job = client
            .get_job(jobhost::api::proto::GetJobRequest { job_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        if job.state == state as i32 {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job stuck in {:?}: {job:?}",
            job.state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
