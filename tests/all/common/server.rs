//! A real `jobhost serve` process for API tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobhost_proto::scheduler::job_scheduler_client::JobSchedulerClient;
use tonic::transport::Channel;

use super::install;

/// A real `jobhost serve` process on a free gRPC port, its log in a temp folder.
pub struct Server {
    child: Child,
    pub addr: String,
    /// The HTTP API's address.
    pub http_addr: String,
    /// The Job Distributor's wsrpc channel's address (unless the test's config sets one).
    pub wsrpc_addr: String,
    /// With TLS: the folder `jobhost certs init` wrote (CA, server, admin and viewer).
    pub certs: Option<std::path::PathBuf>,
    /// A bearer token the health checks send (servers whose APIs require one).
    health_token: Option<String>,
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
    /// The APIs are plaintext (`tls.enabled = false`).
    pub async fn start_with_env(
        redis_url: &str,
        plugins: &[&str],
        config: &str,
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch(redis_url, plugins, config, env, false, None).await
    }

    /// Like [`Server::start_with_env`], for a plaintext server whose `[auth.tokens]` require a
    /// token: health checks send `token` (other calls must add their own).
    pub async fn start_with_token(
        redis_url: &str,
        plugins: &[&str],
        config: &str,
        env: &[(&str, &str)],
        token: &str,
    ) -> Server {
        Server::launch(redis_url, plugins, config, env, false, Some(token)).await
    }

    /// Like [`Server::start_with_env`], over TLS with certificates from `jobhost certs init`
    /// (in [`Server::certs`]); the helpers here call as the admin certificate.
    pub async fn start_tls(
        redis_url: &str,
        plugins: &[&str],
        config: &str,
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch(redis_url, plugins, config, env, true, None).await
    }

    async fn launch(
        redis_url: &str,
        plugins: &[&str],
        config: &str,
        env: &[(&str, &str)],
        tls: bool,
        health_token: Option<&str>,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("jobhost.toml");
        let certs = tls.then(|| {
            let certs = dir.path().join("certs");
            jobhost::certs::init_dir(&certs, &[], false).unwrap();
            certs
        });
        let tls_section = match &certs {
            Some(certs) => format!(
                "[tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
                certs.join("server-cert.pem"),
                certs.join("server-key.pem"),
                certs.join("ca-cert.pem"),
            ),
            None => "[tls]\nenabled = false\n".into(),
        };
        std::fs::write(&config_file, format!("{tls_section}{config}")).unwrap();
        let plugin_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugin_dir).unwrap();
        install(&plugin_dir, plugins);
        let port = jobhost_store::free_port();
        let addr = format!("127.0.0.1:{port}");
        let http_addr = format!("127.0.0.1:{}", jobhost_store::free_port());
        let wsrpc_addr = format!("127.0.0.1:{}", jobhost_store::free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_jobhost"));
        if !config.contains("wsrpc_addr") {
            command.env("JOBHOST_JD_WSRPC_ADDR", &wsrpc_addr);
        }
        // Tests poll fast; the rate limit is tested where a test configures it.
        if !config.contains("rate_limit_per_sec") {
            command.env("JOBHOST_RATE_LIMIT_PER_SEC", "0");
        }
        let child = command
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
            wsrpc_addr,
            certs,
            health_token: health_token.map(str::to_owned),
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
        self.endpoint().connect().await.unwrap()
    }

    /// The gRPC endpoint; over TLS, as the admin certificate.
    pub fn endpoint(&self) -> tonic::transport::Endpoint {
        match &self.certs {
            None => Channel::from_shared(format!("http://{}", self.addr)).unwrap(),
            Some(certs) => {
                let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
                let tls = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(read("ca-cert.pem")))
                    .identity(tonic::transport::Identity::from_pem(
                        read("admin-client-cert.pem"),
                        read("admin-client-key.pem"),
                    ))
                    .domain_name("localhost");
                Channel::from_shared(format!("https://{}", self.addr))
                    .unwrap()
                    .tls_config(tls)
                    .unwrap()
            }
        }
    }

    pub async fn client(&self) -> JobSchedulerClient<Channel> {
        JobSchedulerClient::new(self.channel().await)
    }

    pub async fn health(&self) -> Option<i32> {
        let channel = self.endpoint().connect().await.ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
            service: "jobhost.v1.JobScheduler".into(),
        });
        if let Some(token) = &self.health_token {
            let value = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
        }
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

    /// Sends the process signal `name` (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Sends SIGTERM and waits (30 s at most) for the process to exit; `None` if it did not.
    pub async fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Schedules `request` (which must be accepted) and returns the job as created.
pub async fn schedule_ok(
    client: &mut JobSchedulerClient<Channel>,
    request: jobhost_proto::scheduler::ScheduleJobRequest,
) -> jobhost_proto::scheduler::Job {
    let answer = client.schedule_job(request).await.unwrap().into_inner();
    answer.job.expect("the answer carries the job")
}

/// A `noop` job that sleeps a minute, once it is RUNNING (for cancel and shutdown tests).
pub async fn running_sleeper(
    client: &mut JobSchedulerClient<Channel>,
) -> jobhost_proto::scheduler::Job {
    let mut sleepy = jobhost_proto::scheduler::ScheduleJobRequest {
        job_type: "noop".into(),
        ..Default::default()
    };
    sleepy.labels.insert("sleep_ms".into(), "60000".into());
    let job = schedule_ok(client, sleepy).await;
    wait_state(client, &job.id, jobhost_proto::scheduler::JobState::Running).await
}

/// Polls `GetJob` until job `id` is in `state` (30 s at most) and returns it.
pub async fn wait_state(
    client: &mut JobSchedulerClient<Channel>,
    id: &str,
    state: jobhost_proto::scheduler::JobState,
) -> jobhost_proto::scheduler::Job {
    let start = Instant::now();
    loop {
        let job = client
            .get_job(jobhost_proto::scheduler::GetJobRequest { job_id: id.into() })
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

/// `message` with `authorization: Bearer <token>` metadata.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
