//! Soak: three `cynode serve` replicas behind HAProxy take mixed traffic for `SOAK_MINUTES` (default 3), then the
//! invariants are checked in the database, at the fake Slacks and at the webhook receiver.
//!
//! Traffic (`SOAK_MIX=mixed`, the default): Slack `app_mention`s at `SOAK_RATE` a second (default 4) through the
//! load balancer, spread over `SOAK_WORKSPACES` installs (default 16; each its own rule-enforcing fake Slack with
//! Slack's rates, so the per-workspace budgets are not the only thing measured), each in a thread of its own; every
//! fifth is delivered again directly to a replica as Slack's retry. They cycle through four kinds:
//! - **run**: `run echo …; sleep 1; echo …` — a job that runs in a Docker sandbox (busybox) on a `cynode-node`
//!   agent and streams its output into the thread;
//! - **approve** / **deny**: the same from a requester whose jobs policy holds for approval; the soak's approver
//!   (an API token on the approver list) approves or denies each one `SOAK_HOLD_S` (default 10) later over the
//!   API, so the card is updated and the approved job runs;
//! - **help**: a chat answer without a job.
//!
//! A webhook subscription made through the API (`POST /v1/subscriptions`) sends every task, job and approval event
//! to a receiver in this process, which verifies each signature with the `standardwebhooks` crate.
//!
//! `SOAK_MIX=held` is the first soak's traffic, kept for comparison: every event makes a job held for an approval
//! that never comes (one install, `SOAK_RATE` default 20). `SOAK_REPLICA_ENV="K=V,…"` adds settings to every
//! replica (experiments); `SOAK_LOG_DIR=DIR` writes each replica's log there at the end.
//!
//! Every 10 s it prints, per replica, its resident memory (`VmRSS`), its open PostgreSQL connections and its CPU
//! use, and where work waits (requests not interpreted, streams held/waiting, jobs, deliveries, threads without a
//! reply). At the end (after at most `SOAK_DRAIN_S`, default 180, for the work to finish) it checks: one inbound
//! row, task and stream per event, one job per job event; every job finished as expected; every thread answered
//! once with its final status; every delivery delivered and received, duplicates only as the same message; no
//! 429 and no refused call at any fake; and prints `INVARIANTS OK` or what failed.
//!
//! ```text
//! cargo build -p cynode-gateway -p cynode-node-agent
//! SOAK_MINUTES=3 cargo bench --profile dev -p cynode-tests --bench soak
//! # release replicas, the bench itself built with the dev profile:
//! cargo build --release -p cynode-gateway -p cynode-node-agent
//! CYNODE_BIN_DIR=$PWD/target/release SOAK_MINUTES=30 cargo bench --profile dev -p cynode-tests --bench soak
//! ```
//!
//! Not a CI test: a benchmark run on demand. It needs Docker (the node's sandboxes) and HAProxy.

#[path = "soak/probe.rs"]
mod probe;
#[path = "soak/receiver.rs"]
mod receiver;
#[path = "soak/traffic.rs"]
mod traffic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::SlackRates;

use crate::traffic::{Kind, Mix, Plan};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mix = if std::env::var("SOAK_MIX").as_deref() == Ok("held") { Mix::Held } else { Mix::Mixed };
    let minutes = env_or("SOAK_MINUTES", 3);
    let rate = env_or("SOAK_RATE", if mix == Mix::Held { 20 } else { 4 }).max(1);
    let workspaces = if mix == Mix::Held { 1 } else { env_or("SOAK_WORKSPACES", 16).clamp(1, 64) };
    let hold = Duration::from_secs(env_or("SOAK_HOLD_S", 10));
    let drain = Duration::from_secs(env_or("SOAK_DRAIN_S", 180));
    let mut slacks = Vec::new();
    for _ in 0..workspaces {
        slacks.push(FakeSlack::builder().rates(SlackRates::default()).start().await);
    }
    let plan = Plan { mix, workspaces: usize::try_from(workspaces).unwrap_or(1) };
    let mut d = traffic::start(&plan, &slacks).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let answers: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let approver = (mix == Mix::Mixed).then(|| tokio::spawn(traffic::approve_loop(d.api(), hold, stop.clone())));

    println!(
        "soak: mix {mix:?}, {rate} events/s for {minutes} min over {workspaces} workspace(s); replicas {}",
        d.cluster.len()
    );
    println!(
        "t_s\tevents\trss_mib[r0,r1,r2]\tdb_conns\tcpu_%\tload1\tuninterp\tstreams_held/waiting\tjobs_active/held\t\
         deliv_pending\tno_reply"
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let mut n = 0u64;
    let mut next_sample = start;
    let mut cpu = probe::Cpu::new(&d.cluster);
    let sample = |d: &traffic::Deployment, cpu: &mut probe::Cpu, n: u64, t: Duration| {
        let row = probe::replicas_row(&d.cluster, cpu);
        let pool = d.cluster.db.pool.clone();
        let unanswered = (0..n).filter(|k| traffic::thread_messages(&plan, &slacks, *k).is_empty()).count();
        async move {
            let b = probe::backlog(&pool).await;
            println!(
                "{}\t{n}\t{row}\t{}\t{}\t{}/{}\t{}/{}\t{}\t{unanswered}",
                t.as_secs(),
                probe::load_average(),
                b.uninterpreted,
                b.streams_held,
                b.streams_waiting,
                b.jobs_active,
                b.jobs_held,
                b.deliveries_pending
            );
        }
    };
    while Instant::now() < end {
        if Instant::now() >= next_sample {
            sample(&d, &mut cpu, n, start.elapsed()).await;
            next_sample += Duration::from_secs(10);
        }
        let (http, answers) = (http.clone(), answers.clone());
        let (lb, urls) = (d.cluster.lb_url(), (0..d.cluster.len()).map(|i| d.cluster.url(i)).collect::<Vec<_>>());
        let body = traffic::body(&plan, n);
        let retry = n.is_multiple_of(5);
        tokio::spawn(async move {
            let status = traffic::deliver(&http, &lb, &body, 0).await;
            *answers.lock().expect("answers").entry(status).or_default() += 1;
            if retry {
                let to = &urls[usize::try_from(n).unwrap_or(0) % urls.len()];
                let status = traffic::deliver(&http, to, &body, 1).await;
                *answers.lock().expect("answers").entry(status).or_default() += 1;
            }
        });
        n += 1;
        // On a fixed schedule (event `n` at `start + n × gap`), whatever the sends and samples took.
        let due = start + gap.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
    }
    let load_ended = start.elapsed();
    println!("load ended at {load_ended:?}; draining (at most {drain:?})");
    // Let the work finish: every stream closed, no job unfinished (held ones only in the `held` mix), nothing
    // pending delivery, and the approvals all given.
    let deadline = Instant::now() + drain;
    loop {
        if Instant::now() >= next_sample {
            sample(&d, &mut cpu, n, start.elapsed()).await;
            next_sample += Duration::from_secs(10);
        }
        let b = probe::backlog(&d.cluster.db.pool).await;
        let settled = b.uninterpreted == 0
            && b.jobs_active == 0
            && b.deliveries_pending == 0
            && (mix == Mix::Held || (b.jobs_held == 0 && b.streams_held + b.streams_waiting == 0));
        let replied = (0..n).all(|k| !traffic::thread_messages(&plan, &slacks, k).is_empty());
        if (settled && replied) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settled_at = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(a) = approver {
        let votes = a.await.expect("approver");
        println!("approver votes (status → count): {votes:?}");
    }
    sample(&d, &mut cpu, n, settled_at).await;
    println!(
        "events sent: {n} over {minutes} min at {rate}/s (+ a retry for every fifth); settled {:?} after the load",
        settled_at.saturating_sub(load_ended)
    );
    let answers = answers.lock().expect("answers").clone();
    println!("ingress answers (status → count): {answers:?}");
    // What the replicas logged about their streams: takeovers (a claim that lapsed and was taken by another replica,
    // or one this replica took) and failed steps.
    let log_dir = std::env::var_os("SOAK_LOG_DIR").map(std::path::PathBuf::from);
    for i in 0..d.cluster.len() {
        let out = d.cluster.output(i);
        if let Some(dir) = &log_dir {
            let path = dir.join(format!("replica-{i}.log"));
            if let Err(e) = std::fs::write(&path, &out) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
        let count = |needle: &str| out.lines().filter(|l| l.contains(needle)).count();
        println!(
            "replica {i} log: {} \"taken over by another replica\", {} \"stream step failed\", {} \"claiming streams \
             failed\", {} WARN, {} ERROR",
            count("taken over by another replica"),
            count("stream step failed"),
            count("claiming streams failed"),
            count("WARN"),
            count("ERROR")
        );
    }
    let ok = traffic::check(&plan, &mut d, &slacks, n, &answers).await;
    println!("{}", if ok { "INVARIANTS OK" } else { "INVARIANTS FAILED" });
    let ks: Vec<String> = [Kind::Run, Kind::Approve, Kind::Deny, Kind::Help, Kind::Held]
        .iter()
        .map(|k| format!("{k:?}={}", (0..n).filter(|i| plan.kind(*i) == *k).count()))
        .collect();
    println!("events by kind: {}", ks.join(", "));
    // `exit` runs no destructors: stop the replicas, node and HAProxy (and drop the database) first.
    drop(d);
    drop(slacks);
    if !ok {
        std::process::exit(1);
    }
}
