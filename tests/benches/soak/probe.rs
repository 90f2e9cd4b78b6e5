//! What the soak samples every 10 s: per replica its resident memory, its PostgreSQL connections (counted at its
//! database link) and its CPU use since the last sample; and where work waits in the database — requests not yet
//! interpreted, streams open (held by a replica or waiting for one), jobs not finished, deliveries pending.

use std::time::Instant;

use cynode_tests::cluster::Cluster;
use sqlx::PgPool;

/// Where work waits, from the database.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct Backlog {
    /// Tasks still `received` (not interpreted yet).
    pub uninterpreted: i64,
    /// Open streams a replica holds now.
    pub streams_held: i64,
    /// Open streams nobody holds (waiting to be claimed).
    pub streams_waiting: i64,
    /// Jobs queued, leased or running.
    pub jobs_active: i64,
    /// Jobs waiting for an approval.
    pub jobs_held: i64,
    /// Deliveries not delivered yet.
    pub deliveries_pending: i64,
}

/// Reads the backlog.
pub async fn backlog(pool: &PgPool) -> Backlog {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasks WHERE state = 'received') AS uninterpreted,
                (SELECT count(*) FROM stream_records WHERE state = 'open' AND claimed_until >= now()) AS streams_held,
                (SELECT count(*) FROM stream_records WHERE state = 'open'
                   AND (claimed_until IS NULL OR claimed_until < now())) AS streams_waiting,
                (SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased', 'running')) AS jobs_active,
                (SELECT count(*) FROM jobs WHERE state = 'awaiting_approval') AS jobs_held,
                (SELECT count(*) FROM deliveries WHERE state = 'pending') AS deliveries_pending",
    )
    .fetch_one(pool)
    .await
    .unwrap_or_default()
}

/// CPU time (user + system) of process `pid` in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (in parentheses, which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Per-replica CPU use between samples.
pub struct Cpu {
    last: Vec<Option<(u32, u64)>>,
    at: Instant,
}

impl Cpu {
    /// Starts counting for the cluster's replicas.
    pub fn new(cluster: &Cluster) -> Self {
        let last = (0..cluster.len()).map(|i| cluster.pid(i).and_then(|p| Some((p, cpu_ticks(p)?)))).collect();
        Self { last, at: Instant::now() }
    }

    /// Each replica's CPU use since the last call, in percent of one core.
    pub fn sample(&mut self, cluster: &Cluster) -> Vec<f64> {
        let secs = self.at.elapsed().as_secs_f64().max(0.001);
        self.at = Instant::now();
        (0..cluster.len())
            .map(|i| {
                let now = cluster.pid(i).and_then(|p| Some((p, cpu_ticks(p)?)));
                let used = match (self.last[i], now) {
                    (Some((p0, t0)), Some((p1, t1))) if p0 == p1 => t1.saturating_sub(t0),
                    _ => 0,
                };
                self.last[i] = now;
                #[expect(clippy::cast_precision_loss, reason = "ticks are small")]
                let pct = used as f64 / secs;
                pct
            })
            .collect()
    }
}

/// One row of the soak's table: memory in MiB, connections, CPU % of a core, per replica.
pub fn replicas_row(cluster: &Cluster, cpu: &mut Cpu) -> String {
    let n = cluster.len();
    #[expect(clippy::cast_precision_loss, reason = "KiB counts are small")]
    let rss: Vec<String> = (0..n).map(|i| format!("{:.1}", cluster.rss_kib(i).unwrap_or(0) as f64 / 1024.0)).collect();
    let conns: Vec<String> = (0..n).map(|i| cluster.db_connections(i).to_string()).collect();
    let cpu: Vec<String> = cpu.sample(cluster).iter().map(|c| format!("{c:.0}")).collect();
    format!("{}\t{}\t{}", rss.join(","), conns.join(","), cpu.join(","))
}

/// The machine's 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
