//! A local PostgreSQL child for development (`jobhost serve --dev`) and tests: Debian's
//! server binaries, its own state folder (`data/`, and `password`, 0600), TCP on 127.0.0.1
//! only, one superuser `jobhost` with a random password (SCRAM), so other local users of
//! the machine cannot walk in. PostgreSQL refuses to run as root, so as root the server runs
//! as the `postgres` user (Debian's package creates it), else as `nobody`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a local PostgreSQL could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DevPostgresError {
    /// No server binaries (`initdb`, `postgres`).
    #[error(
        "PostgreSQL is not installed: install it (e.g. `apt-get install postgresql`, or `just \
         postgresql`) or point jobhost at one with JOBHOST_HISTORY_URL"
    )]
    NotInstalled,
    /// The data folder could not be prepared.
    #[error("cannot prepare the PostgreSQL data folder {0}: {1}")]
    DataDir(PathBuf, String),
    /// The data folder holds something else: it is left alone.
    #[error(
        "{0} is not empty and is not a PostgreSQL data folder: point history.dev_dir at a \
         folder of its own"
    )]
    NotOurs(PathBuf),
    /// `initdb` failed.
    #[error("initdb failed for {dir}: {output}")]
    Initdb {
        /// The data folder.
        dir: PathBuf,
        /// What it printed.
        output: String,
    },
    /// The server did not start or answer.
    #[error("PostgreSQL on port {port} did not become ready: {reason} (log: {log})")]
    NotReady {
        /// Its port.
        port: u16,
        /// What failed.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
}

/// A `postgres` child process.
pub struct DevPostgres {
    child: Option<Child>,
    bin: PathBuf,
    /// The state folder: `data/` and `password`.
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    password: String,
}

/// The port `serve --dev` prefers for its PostgreSQL.
pub const DEV_PORT: u16 = 6391;

/// The database and user of a local server.
const NAME: &str = "jobhost";

impl DevPostgres {
    /// Starts PostgreSQL with its data in `dir` (made by `initdb` the first time) on
    /// `port`, or on [`DEV_PORT`] if free, else on any free port; waits until the
    /// `jobhost` database answers.
    pub async fn start(dir: &Path, port: Option<u16>) -> Result<DevPostgres, DevPostgresError> {
        let bin = binaries().ok_or(DevPostgresError::NotInstalled)?;
        let data_err =
            |e: &dyn std::fmt::Display| DevPostgresError::DataDir(dir.to_owned(), e.to_string());
        std::fs::create_dir_all(dir.join("data")).map_err(|e| data_err(&e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| data_err(&e))?;
        let data = dir.join("data");
        let fresh = !data.join("PG_VERSION").exists();
        if fresh
            && std::fs::read_dir(&data)
                .map_err(|e| data_err(&e))?
                .next()
                .is_some()
        {
            return Err(DevPostgresError::NotOurs(data));
        }
        let user = unprivileged_user();
        if let Some((uid, gid)) = user {
            chown_all(&data, uid, gid).map_err(|e| data_err(&e))?;
        }
        let port = port.unwrap_or_else(|| {
            if std::net::TcpListener::bind(("127.0.0.1", DEV_PORT)).is_ok() {
                DEV_PORT
            } else {
                jobhost_store::free_port()
            }
        });
        let password = password(&dir, fresh, user).map_err(|e| data_err(&e))?;
        let mut server = DevPostgres {
            child: None,
            bin,
            dir,
            port,
            user,
            password,
        };
        if fresh {
            server.initdb()?;
        } else {
            // A server left running by a node that was killed holds the folder: stop it.
            server.pg_ctl_stop("fast");
        }
        server.spawn()?;
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// `postgres://jobhost:<password>@127.0.0.1:<port>/jobhost`: a secret, not for logs
    /// (see [`DevPostgres::shown_url`]).
    pub fn url(&self) -> String {
        self.url_of(NAME)
    }

    /// The URL of another database on this server (with the password).
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{NAME}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The URL without the password, for messages.
    pub fn shown_url(&self) -> String {
        format!("postgres://{NAME}@127.0.0.1:{}/{NAME}", self.port)
    }

    /// Its data folder (`postgresql.conf`, `pg_hba.conf`, `postmaster.pid`...).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its state folder (the data folder and the password file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command.stdin(Stdio::null());
        command
    }

    fn initdb(&self) -> Result<(), DevPostgresError> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                NAME,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", self.dir.join("password").display()))
            .output()
            .map_err(|e| DevPostgresError::DataDir(self.dir.clone(), e.to_string()))?;
        if !out.status.success() {
            return Err(DevPostgresError::Initdb {
                dir: self.dir.clone(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), DevPostgresError> {
        let log = std::fs::File::create(self.log())
            .map_err(|e| DevPostgresError::DataDir(self.dir.clone(), e.to_string()))?;
        if let Some((uid, gid)) = self.user {
            let _ = std::os::unix::fs::chown(self.log(), Some(uid), Some(gid));
        }
        let err = log
            .try_clone()
            .map_err(|e| DevPostgresError::DataDir(self.dir.clone(), e.to_string()))?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=64MB"])
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| DevPostgresError::NotReady {
                port: self.port,
                reason: e.to_string(),
                log: self.log(),
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// `pg_ctl stop` in `mode` (fast: sessions end, data flushed; immediate: at once),
    /// waiting up to 20 s. Blocking.
    fn pg_ctl_stop(&self, mode: &str) {
        let _ = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), DevPostgresError> {
        let start = Instant::now();
        let mut last = String::from("no answer");
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                last = format!("exited with {status}");
                break;
            }
            match self.create_database(NAME).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DevPostgresError::NotReady {
            port: self.port,
            reason: last,
            log: self.log(),
        })
    }

    /// Creates `database` on this server if it does not exist yet.
    pub async fn create_database(&self, database: &str) -> Result<(), String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url_of("postgres"), tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await
            .map_err(|e| e.to_string())?;
        if exists.is_none() {
            let quoted = database.replace('"', "\"\"");
            client
                .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Stops the server (a fast shutdown: sessions end, data is flushed) and waits for it.
    pub async fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let mut stopper = self.command("pg_ctl");
        stopper
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // (pg_ctl waits: off the async threads.)
        let _ = tokio::task::spawn_blocking(move || stopper.status()).await;
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again after [`DevPostgres::stop`], on the same port and data.
    pub async fn restart(&mut self) -> Result<(), DevPostgresError> {
        self.stop().await;
        self.spawn()?;
        self.wait_ready(Duration::from_secs(30)).await
    }
}

impl Drop for DevPostgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An immediate shutdown by pg_ctl; killing the postmaster alone would leave its
            // workers holding the port and the data folder for a while.
            self.pg_ctl_stop("immediate");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The superuser's password: made (random, 0600, readable by the server's user) for a
/// fresh data folder, read back for an existing one.
fn password(dir: &Path, fresh: bool, user: Option<(u32, u32)>) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = dir.join("password");
    if !fresh && let Ok(text) = std::fs::read_to_string(&file) {
        return Ok(text.trim().to_owned());
    }
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let _ = std::fs::remove_file(&file);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)?;
    std::io::Write::write_all(&mut out, password.as_bytes())?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&file, Some(uid), Some(gid))?;
    }
    Ok(password)
}

/// The folder of the newest server binaries: Debian's `/usr/lib/postgresql/<v>/bin`, else
/// wherever `initdb` is on the PATH.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
}

/// As root: the (uid, gid) of `postgres`, else of `nobody`. Otherwise `None` (run as is).
fn unprivileged_user() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    if me != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let find = |name: &str| {
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    find("postgres").or_else(|| find("nobody"))
}

/// Gives `dir` and everything in it to `uid:gid` (initdb wants its folder owned, 0700).
fn chown_all(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    Ok(())
}
