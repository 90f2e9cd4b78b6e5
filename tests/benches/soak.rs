//! Soak: three `cynode serve` replicas behind HAProxy take mixed Slack traffic for `SOAK_MINUTES` (default 3): new
//! events at `SOAK_RATE` a second (default 20; every fifth one delivered again as Slack's retry, to another
//! replica), each creating a task, a job held for approval and a stream that posts the approval card into its own
//! thread. Every 10 s it prints each replica's resident memory (`VmRSS`) and open PostgreSQL connections; at the
//! end it checks the invariants (one inbound row, task, job and reply per event, no 429) and prints a summary.
//!
//! ```text
//! cargo build -p cynode-gateway && SOAK_MINUTES=3 cargo bench --profile dev -p cynode-tests --bench soak
//! ```
//!
//! Not a CI test: a benchmark run on demand. The replicas are the binaries of the profile it is built with
//! (`--profile dev`: the debug binaries `cargo build` made; `cargo build --release` first for the bench profile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_adapters::slack;
use cynode_tests::cluster::{Cluster, ClusterOptions};
use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::SlackRates;
use serde_json::json;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TEAM: &str = "T1DC2JH3J";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn body(n: u64) -> String {
    json!({
        "token": "unused", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
        "event_id": format!("EvSOAK{n:07}"), "event_time": 1_700_000_000,
        "event": { "type": "app_mention", "user": format!("USOAK{n:06}"), "text": "<@UBOT> run echo soak",
                   "ts": format!("{}.0001001", 1_700_500_000 + n), "thread_ts": format!("{}.000100", 1_700_500_000 + n),
                   "channel": format!("CSOAK{n:06}"), "event_ts": format!("{}.0001001", 1_700_500_000 + n) }
    })
    .to_string()
}

async fn deliver(http: &reqwest::Client, base: &str, body: &str, retry: u32) -> u16 {
    let ts = chrono::Utc::now().timestamp();
    let signature = slack::sign(SECRET.as_bytes(), ts, body.as_bytes()).expect("sign");
    let mut req = http
        .post(format!("{base}/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", signature)
        .body(body.to_owned());
    if retry > 0 {
        req = req.header("x-slack-retry-num", retry.to_string()).header("x-slack-retry-reason", "http_timeout");
    }
    req.send().await.map_or(0, |r| r.status().as_u16())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes = env_or("SOAK_MINUTES", 3);
    let rate = env_or("SOAK_RATE", 20).max(1);
    let slack = FakeSlack::builder().rates(SlackRates::default()).start().await;
    let bootstrap = format!(
        "installs:\n  - {{platform: slack, name: acme, team_id: {TEAM}, api_app_id: A1, signing_secret: {SECRET}, \
         bot_token: {token}, api_base_url: '{base}'}}\n\
         templates:\n  - {{name: busybox, image: \"cynode/busybox:e2e\"}}\n\
         policy:\n  - {{when: {{template: [busybox]}}, approvers: ['U0APPROVER']}}\n",
        token = slack.token(),
        base = slack.base_url(),
    );
    let env = vec![
        ("CYNODE__LIMITS__RATE__INSTALL__PER_MINUTE".to_owned(), "600000".to_owned()),
        ("CYNODE__LIMITS__RATE__INSTALL__BURST".to_owned(), "10000".to_owned()),
    ];
    let cluster = Cluster::start(ClusterOptions { replicas: 3, bootstrap, env }).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let answers: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let mut n = 0u64;
    let mut next_sample = start;
    println!("t_s\trss_mib[r0,r1,r2]\tdb_conns[r0,r1,r2]\tevents");
    while Instant::now() < end {
        if Instant::now() >= next_sample {
            let rss: Vec<String> =
                (0..3).map(|i| format!("{:.1}", cluster.rss_kib(i).unwrap_or(0) as f64 / 1024.0)).collect();
            let conns: Vec<String> = (0..3).map(|i| cluster.db_connections(i).to_string()).collect();
            println!("{}\t{}\t{}\t{n}", start.elapsed().as_secs(), rss.join(","), conns.join(","));
            next_sample += Duration::from_secs(10);
        }
        let (http, answers, urls) = (http.clone(), answers.clone(), [cluster.url(0), cluster.url(1), cluster.url(2)]);
        let lb = cluster.lb_url();
        let i = n;
        tokio::spawn(async move {
            let b = body(i);
            let status = deliver(&http, &lb, &b, 0).await;
            *answers.lock().expect("answers").entry(status).or_default() += 1;
            if i.is_multiple_of(5) {
                let status = deliver(&http, &urls[usize::try_from(i % 3).unwrap_or(0)], &b, 1).await;
                *answers.lock().expect("answers").entry(status).or_default() += 1;
            }
        });
        n += 1;
        tokio::time::sleep(gap).await;
    }
    // Let the replies catch up, then check.
    let deadline = Instant::now() + Duration::from_secs(120);
    let threads = |k: u64| slack.messages_in(&format!("CSOAK{k:06}"), Some(&format!("{}.000100", 1_700_500_000 + k)));
    while Instant::now() < deadline && (0..n).any(|k| threads(k).is_empty()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let caught_up = start.elapsed();
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM inbound_events), (SELECT count(*) FROM tasks), (SELECT count(*) FROM jobs)",
    )
    .fetch_one(&cluster.db.pool)
    .await
    .expect("counts");
    let replies: Vec<usize> = (0..n).map(|k| threads(k).len()).collect();
    let rss: Vec<String> = (0..3).map(|i| format!("{:.1}", cluster.rss_kib(i).unwrap_or(0) as f64 / 1024.0)).collect();
    println!("events sent: {n} over {minutes} min at {rate}/s (+ a retry for every fifth)");
    println!("answers: {:?}", answers.lock().expect("answers"));
    println!("inbound rows, tasks, jobs: {counts:?}");
    println!(
        "threads with exactly one reply: {} of {n}; with none: {}; with more: {} (checked at {:?})",
        replies.iter().filter(|r| **r == 1).count(),
        replies.iter().filter(|r| **r == 0).count(),
        replies.iter().filter(|r| **r > 1).count(),
        caught_up
    );
    println!("429s: {}, rejections: {}", slack.count_429(), slack.rejections().len());
    println!("final rss_mib [r0,r1,r2]: {}", rss.join(","));
}
