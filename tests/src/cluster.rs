//! A multi-replica deployment for tests: a fresh database migrated with `cynode migrate`, N `cynode serve` replicas
//! on ports of their own (each reaching PostgreSQL through a [`TcpProxy`] the test controls), a real HAProxy in
//! front of them (round-robin, no stickiness, health-checked on `/readyz`), and `cynode-node` agents talking to the
//! load balancer. Any process can be killed (`SIGKILL`), paused (`SIGSTOP`/`SIGCONT`) or restarted on its port.
//!
//! The harness checks nothing about CyNode itself: tests look at the database ([`Cluster::db`], a direct pool that
//! no proxy cuts) and at the fakes. Everything started here is stopped when the cluster is dropped (paused
//! processes are resumed first, so they can shut down); nothing else is ever signalled.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::TestDb;
use crate::process::{BinProcess, run_to_end};
use crate::tcp_proxy::{Link, TcpProxy};

/// The master key of every cluster (32 bytes, base64).
pub const CLUSTER_MASTER_KEY: &str = "Y3lub2RlLWUyZS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=";

/// How a cluster is set up.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Replicas (`cynode serve`).
    pub replicas: usize,
    /// The bootstrap file every replica reads (installs, node keys, templates, policy).
    pub bootstrap: String,
    /// Extra environment of every replica (`CYNODE__…` settings).
    pub env: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self { replicas: 3, bootstrap: String::new(), env: Vec::new() }
    }
}

/// One replica: its port (kept across restarts), its database link and its process.
#[derive(Debug)]
struct Replica {
    port: u16,
    db_link: TcpProxy,
    process: Option<BinProcess>,
    paused: bool,
    /// Earlier processes' output (a restarted replica keeps what its predecessors printed).
    history: Vec<String>,
}

/// A running deployment; see the module docs.
#[derive(Debug)]
pub struct Cluster {
    /// The database, through a direct pool (for checking invariants).
    pub db: TestDb,
    lb_port: u16,
    replicas: Vec<Replica>,
    haproxy: Option<BinProcess>,
    nodes: Vec<BinProcess>,
    env: Vec<(String, String)>,
    bootstrap: PathBuf,
    dir: tempfile::TempDir,
}

/// A free loopback port (bound and released; a tiny race with other processes, acceptable in tests).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Cluster {
    /// Creates an empty database, runs `cynode migrate`, starts the replicas and HAProxy, and waits until the load
    /// balancer answers `/readyz`.
    ///
    /// # Panics
    /// When anything cannot be started: the test cannot run.
    pub async fn start(options: ClusterOptions) -> Self {
        let db = TestDb::empty().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = dir.path().join("cynode.yaml");
        std::fs::write(&bootstrap, &options.bootstrap).expect("write bootstrap");
        let migrate_env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", CLUSTER_MASTER_KEY)];
        let (code, out, err) = run_to_end("cynode", &["migrate"], &migrate_env).await;
        assert_eq!(code, 0, "cynode migrate failed:\n{out}\n{err}");
        let pg: SocketAddr = {
            let url = url::Url::parse(&db.url).expect("database URL");
            format!("{}:{}", url.host_str().expect("host"), url.port().expect("port")).parse().expect("address")
        };
        let mut replicas = Vec::new();
        for _ in 0..options.replicas {
            replicas.push(Replica {
                port: free_port(),
                db_link: TcpProxy::start(pg).await,
                process: None,
                paused: false,
                history: Vec::new(),
            });
        }
        let mut cluster = Self {
            db,
            lb_port: free_port(),
            replicas,
            haproxy: None,
            nodes: Vec::new(),
            env: options.env,
            bootstrap,
            dir,
        };
        for i in 0..options.replicas {
            cluster.start_replica(i).await;
        }
        cluster.start_haproxy().await;
        cluster
    }

    fn replica_env(&self, i: usize) -> Vec<(String, String)> {
        let mut url = url::Url::parse(&self.db.url).expect("database URL");
        url.set_port(Some(self.replicas[i].db_link.addr().port())).expect("port");
        let mut env = vec![
            ("DATABASE_URL".to_owned(), url.to_string()),
            ("CYNODE__SECURITY__MASTER_KEY".to_owned(), CLUSTER_MASTER_KEY.to_owned()),
        ];
        env.extend(self.env.iter().cloned());
        env
    }

    async fn start_replica(&mut self, i: usize) {
        let env = self.replica_env(i);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let listen = format!("127.0.0.1:{}", self.replicas[i].port);
        let boot = self.bootstrap.to_str().expect("utf-8 path").to_owned();
        let mut process = BinProcess::spawn("cynode", &["serve", "--listen", &listen, "--bootstrap", &boot], &env);
        process.wait_for("serving on http://", Duration::from_secs(60)).await;
        self.replicas[i].process = Some(process);
        self.replicas[i].paused = false;
    }

    async fn start_haproxy(&mut self) {
        let servers: String = self
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("  server r{i} 127.0.0.1:{} check\n", r.port))
            .collect();
        // Round-robin without stickiness; a replica leaves the rotation after two failed `/readyz` checks 500 ms
        // apart (each may take 2 s: a busy 2-core machine answers slowly) and comes back after two good ones. A request whose connection fails goes to another replica
        // (`retry-on conn-failure` + `redispatch`): it never reached the dead one, so that is safe.
        let config = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 90s\n  timeout server 90s\n  \
             timeout queue 5s\n  retries 3\n  option redispatch 1\n  retry-on conn-failure\n\
             frontend ingress\n  bind 127.0.0.1:{}\n  default_backend cynode\n\
             backend cynode\n  balance roundrobin\n  option httpchk GET /readyz\n  \
             timeout check 2s\n  default-server inter 500ms fall 2 rise 2\n{servers}",
            self.lb_port
        );
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let haproxy = haproxy_path();
        let process = BinProcess::spawn_program(&haproxy, &["-db", "-f", path.to_str().expect("utf-8")], &[]);
        self.haproxy = Some(process);
        // Ready when every replica is in the rotation: a round of `/readyz` through it all answer 200.
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut ok = 0;
        while ok < 2 * self.replicas.len() {
            let ready = client
                .get(format!("{}/readyz", self.lb_url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ok = if ready { ok + 1 } else { 0 };
            assert!(
                tokio::time::Instant::now() < deadline,
                "HAProxy did not become ready:\n{}",
                self.haproxy.as_ref().map(|h| h.output().join("\n")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(if ready { 20 } else { 200 })).await;
        }
    }

    /// The load balancer, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn lb_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.lb_port)
    }

    /// Replica `i` directly.
    #[must_use]
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[i].port)
    }

    /// How many replicas there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether there are no replicas.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Starts `cynode-node run --name NAME ARGS` with `key`, talking to the load balancer, and waits until it has
    /// registered.
    pub async fn add_node(&mut self, name: &str, args: &[&str], key: &str) {
        let lb = self.lb_url();
        let mut argv = vec!["run", "--name", name, "--orchestrator", lb.as_str()];
        argv.extend_from_slice(args);
        let mut node = BinProcess::spawn("cynode-node", &argv, &[("CYNODE_NODE_KEY", key)]);
        node.wait_for("node registered", Duration::from_secs(30)).await;
        self.nodes.push(node);
    }

    /// The OS process id of replica `i`, when it runs.
    #[must_use]
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.replicas[i].process.as_ref().and_then(BinProcess::pid)
    }

    /// Kills replica `i` with `SIGKILL` (nothing is released or flushed) and waits for it to be gone.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.replicas[i].process.take() {
            p.signal("KILL");
            p.wait_exit(Duration::from_secs(10)).await;
            self.replicas[i].history.extend(p.output());
        }
        self.replicas[i].paused = false;
    }

    /// Stops replica `i` with `SIGTERM` (a graceful shutdown, as in a rolling restart) and waits for it to exit.
    pub async fn terminate(&mut self, i: usize) -> Option<i32> {
        let mut p = self.replicas[i].process.take()?;
        p.signal("TERM");
        let code = p.wait_exit(Duration::from_secs(30)).await;
        self.replicas[i].history.extend(p.output());
        code
    }

    /// Freezes replica `i` (`SIGSTOP`): it holds its connections, claims and leases but does nothing.
    pub fn pause(&mut self, i: usize) {
        if let Some(p) = &self.replicas[i].process {
            p.signal("STOP");
            self.replicas[i].paused = true;
        }
    }

    /// Lets a paused replica go on (`SIGCONT`) as if no time had passed for it.
    pub fn resume(&mut self, i: usize) {
        if let Some(p) = &self.replicas[i].process {
            p.signal("CONT");
            self.replicas[i].paused = false;
        }
    }

    /// Starts replica `i` again on its port (after [`Self::kill`] or [`Self::terminate`]).
    pub async fn restart(&mut self, i: usize) {
        assert!(self.replicas[i].process.is_none(), "replica {i} still runs; kill or terminate it first");
        self.start_replica(i).await;
    }

    /// Sets the link between replica `i` and PostgreSQL (cut it, partition it, restore it).
    pub fn db_link(&self, i: usize, link: Link) {
        self.replicas[i].db_link.set(link);
    }

    /// Sets every replica's link to PostgreSQL at once (the database going away and coming back, for the
    /// replicas; the test's own pool is not affected).
    pub fn db_links(&self, link: Link) {
        for r in &self.replicas {
            r.db_link.set(link);
        }
    }

    /// Replica `i`'s open connections to PostgreSQL (counted at its database link).
    #[must_use]
    pub fn db_connections(&self, i: usize) -> usize {
        self.replicas[i].db_link.connections()
    }

    /// Replica `i`'s resident memory in KiB (`VmRSS`), when it runs.
    #[must_use]
    pub fn rss_kib(&self, i: usize) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(i)?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Everything replica `i` printed, across restarts.
    #[must_use]
    pub fn output(&self, i: usize) -> String {
        let r = &self.replicas[i];
        let mut lines = r.history.clone();
        lines.extend(r.process.as_ref().map(BinProcess::output).unwrap_or_default());
        lines.join("\n")
    }

    /// Everything every replica, node and HAProxy printed (for failure messages).
    #[must_use]
    pub fn all_output(&self) -> String {
        let mut out = String::new();
        for i in 0..self.replicas.len() {
            out.push_str(&format!("--- replica {i}\n{}\n", self.output(i)));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!("--- node {i}\n{}\n", n.output().join("\n")));
        }
        if let Some(h) = &self.haproxy {
            out.push_str(&format!("--- haproxy\n{}\n", h.output().join("\n")));
        }
        out
    }

    /// Which replica owns the local end of a TCP connection from `peer` (as a server saw it): found through
    /// `/proc/net/tcp` and the replicas' open sockets.
    #[must_use]
    pub fn replica_of_peer(&self, peer: SocketAddr) -> Option<usize> {
        let inodes = socket_inodes(peer);
        self.replicas
            .iter()
            .position(|r| r.process.as_ref().and_then(BinProcess::pid).is_some_and(|pid| owns_socket(pid, &inodes)))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            if r.paused
                && let Some(p) = &r.process
            {
                p.signal("CONT");
            }
        }
    }
}

/// The `haproxy` binary (`HAPROXY` overrides the lookup in `PATH` and `/usr/sbin`).
///
/// # Panics
/// When HAProxy is not installed (`scripts/setup` installs it).
fn haproxy_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HAPROXY") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.exists())
        .expect("haproxy is not installed (run scripts/setup)")
}

/// The inodes of the loopback TCP sockets whose local address is `peer`.
fn socket_inodes(peer: SocketAddr) -> HashSet<String> {
    let local = match peer {
        SocketAddr::V4(a) => format!("{:08X}:{:04X}", u32::from_le_bytes(a.ip().octets()), a.port()),
        SocketAddr::V6(_) => return HashSet::new(),
    };
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(1) == Some(&local.as_str())).then(|| cols.get(9).map(|s| (*s).to_owned())).flatten()
        })
        .collect()
}

fn owns_socket(pid: u32, inodes: &HashSet<String>) -> bool {
    let Ok(fds) = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd")) else { return false };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).ok().and_then(|l| l.to_str().map(str::to_owned)).is_some_and(|l| {
            l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).is_some_and(|n| inodes.contains(n))
        })
    })
}
