//! Scaling benchmark (a harness, not a test): the same deployment as the multi-replica tests — `cynode serve`
//! replicas on one PostgreSQL (the shared embedded test server, fsync on) behind HAProxy (round-robin) — measured
//! two ways, the baseline (1 replica) in the same run:
//!
//! - **ingress saturation** with 1, 2 and 3 replicas (`SCALING_REPLICAS`, default `1,2,3`): the open-loop
//!   generator of `scripts/bench-ingress` (the release `cynode-loadgen`, a process of its own) offers unique, correctly signed Slack
//!   `app_mention`s through the load balancer at each of `SCALING_RATES` (default `1000,2000,4000,6000`) for
//!   `SCALING_DURATION_S` (default 10) seconds; acked events per second and latency percentiles from each
//!   request's scheduled send time. The install is the one of `scripts/bench-ingress` (replies go to a closed
//!   port and fail at once). Afterwards it checks that every acked event is stored.
//! - **dispatch cycles/s** with 1 and 2 replicas (`SCALING_DISPATCH_REPLICAS`, default `1,2`): `SCALING_JOBS`
//!   (default 5,000) no-op host jobs enqueued straight in the database, then `SCALING_NODES` (default 8)
//!   simulated nodes speaking the node protocol through the load balancer cycle through them (lease, finish with
//!   one output chunk); cycles/s from the first lease request to the last finish, and every job checked finished.
//!
//! ```text
//! cargo build --release -p cynode-gateway -p cynode-loadgen
//! cargo bench -p cynode-tests --bench scaling
//! # or the bench built with the dev profile, the replicas and the generator release binaries:
//! CYNODE_BIN_DIR=$PWD/target/release cargo bench --profile dev -p cynode-tests --bench scaling
//! ```
//!
//! The replicas and the generator are the binaries next to the bench (the release ones for `cargo bench`), or in
//! `CYNODE_BIN_DIR`. The simulated nodes run in this process (debug code with `--profile dev`).
//! Everything — the generator, HAProxy, the replicas and PostgreSQL — shares the machine's cores: on a 2-core
//! machine more replicas add processes, not CPU, so the figures say what the replicas cost, not how they scale
//! on separate hosts.

#[path = "scaling/nodes.rs"]
mod nodes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cynode_loadgen::{Step, summarize};
use cynode_tests::bin_path;
use cynode_tests::cluster::{Cluster, ClusterOptions};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn list(name: &str, default: &str) -> Vec<u32> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `scripts/bench/ingress-bootstrap.yaml`: one Slack install with its limits raised, replies to a closed port.
fn ingress_bootstrap() -> String {
    format!(
        "installs:\n  - {{platform: slack, name: bench, team_id: T1DC2JH3J, api_app_id: A0123456789, \
         signing_secret: {SECRET}, bot_token: xoxb-benchmark, api_base_url: 'http://127.0.0.1:9/api', \
         rate_limits: {{install: {{per_minute: 6000000, burst: 100000}}, user: {{per_minute: 60000, burst: 1000}}, \
         channel: {{per_minute: 600000, burst: 10000}}}}}}\n"
    )
}

fn label(replicas: u32) -> String {
    format!("{replicas} replica{}", if replicas == 1 { "" } else { "s" })
}

async fn ingress(replicas: u32, rates: &[u32], duration_s: u64) -> Vec<Step> {
    let options = ClusterOptions {
        replicas: replicas as usize,
        bootstrap: ingress_bootstrap(),
        env: vec![("RUST_LOG".to_owned(), "error".to_owned())],
    };
    let cluster = Cluster::start(options).await;
    // The generator is the release `cynode-loadgen` (`scripts/bench-ingress`'s), a process of its own: this bench
    // may be built with the dev profile, and a debug generator would measure itself.
    let rates_arg: Vec<String> = rates.iter().map(u32::to_string).collect();
    let out = tokio::process::Command::new(bin_path("cynode-loadgen"))
        .args(["run", "--url", &format!("{}/slack/events", cluster.lb_url()), "--label", &label(replicas)])
        .args(["--rates", &rates_arg.join(","), "--duration-s", &duration_s.to_string(), "--text", "help"])
        .output()
        .await
        .expect("cynode-loadgen runs (cargo build --release -p cynode-loadgen)");
    assert!(out.status.success(), "cynode-loadgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<Step> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a step"))
        .collect();
    for s in &steps {
        println!(
            "ingress, {}: offered {}/s → {:.0} acked/s, {} errors, p50 {:?} ms, p99 {:?} ms",
            s.label, s.offered, s.achieved, s.errors, s.p50_ms, s.p99_ms
        );
    }
    let acked: u64 = steps.iter().map(|s| s.ok).sum();
    // The warm-up's events are stored too: at least every acked event of the steps.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbound_events").fetch_one(&cluster.db.pool).await.expect("count");
    assert!(u64::try_from(stored).unwrap_or(0) >= acked, "acked {acked} events but stored {stored}");
    println!("ingress, {}: {acked} acked in the steps, {stored} stored (with the warm-up)", label(replicas));
    steps
}

async fn dispatch(replicas: u32, jobs: usize, node_count: usize) -> f64 {
    let bootstrap = format!("node_keys:\n  - {{name: bench, key: {}, executors: [host]}}\n", nodes::KEY);
    let options = ClusterOptions {
        replicas: replicas as usize,
        bootstrap,
        env: vec![("RUST_LOG".to_owned(), "error".to_owned())],
    };
    let cluster = Cluster::start(options).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    let base = cluster.lb_url();
    let mut tokens = Vec::new();
    for i in 0..node_count {
        tokens.push(nodes::register(&http, &base, &format!("sim-{i}")).await);
    }
    nodes::enqueue(&cluster.db.pool, jobs).await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let hs = nodes::cycle(&http, &base, &tokens, &stop, &count);
    while count.load(Ordering::Relaxed) < jobs as u64 && t0.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.await;
    }
    let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
        .fetch_one(&cluster.db.pool)
        .await
        .expect("count");
    let cycles = count.load(Ordering::Relaxed);
    assert_eq!(finished, i64::try_from(cycles).unwrap_or(-1), "every cycle finished one job");
    assert_eq!(cycles, jobs as u64, "every job was run within 300 s");
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let rate = cycles as f64 / secs;
    println!("dispatch, {}: {cycles} cycles in {secs:.1} s = {rate:.0} cycles/s ({node_count} nodes)", label(replicas));
    rate
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rates = list("SCALING_RATES", "1000,2000,4000,6000");
    let replica_counts = list("SCALING_REPLICAS", "1,2,3");
    let dispatch_counts = list("SCALING_DISPATCH_REPLICAS", "1,2");
    let duration_s = env_or("SCALING_DURATION_S", 10);
    let jobs = usize::try_from(env_or("SCALING_JOBS", 5000)).unwrap_or(5000);
    let node_count = usize::try_from(env_or("SCALING_NODES", 8)).unwrap_or(8);
    println!(
        "scaling benchmark: {} CPUs, load average {} at the start",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let mut steps = Vec::new();
    for r in &replica_counts {
        steps.extend(ingress(*r, &rates, duration_s).await);
    }
    let mut cycles = Vec::new();
    for r in &dispatch_counts {
        cycles.push((*r, dispatch(*r, jobs, node_count).await));
    }
    println!("\nIngress (acked events/s and latency from the scheduled send; ratio vs {}):", label(replica_counts[0]));
    print!("{}", summarize(&steps));
    println!("\nDispatch ({jobs} no-op jobs, {node_count} simulated nodes through the load balancer):");
    let base = cycles.first().map_or(1.0, |(_, c)| *c);
    for (r, c) in &cycles {
        println!("| {} | {c:.0} cycles/s | {:.2}× |", label(*r), c / base);
    }
}
