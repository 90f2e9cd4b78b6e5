//! The stream worker against an in-memory sink that enforces Slack's limits (one rendered message per call,
//! at most 4,000 characters, a minimum gap between edits of one message, posts at most once per slot).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_adapters::split::Budget;
use cynode_adapters::{Platform, PlatformError, PlatformResult, Reply, slack};
use cynode_orchestrator::stream::{
    BucketSpec, Op, Owned, Posted, Sinks, StreamSettings, Target, ThreadSink, Via, spawn_stream_worker,
};
use cynode_protocol::{FinishRequest, FinishStatus, LeaseRef, Outcome, OutputBatch, OutputChunk, Stream};
use cynode_tests::TestDb;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{dispatcher, host_caps, node, slack_thread_task, succeeded};

const EDIT_GAP: Duration = Duration::from_millis(90);

#[derive(Debug, Default)]
struct Shown {
    posts: Vec<String>,
    texts: Vec<String>,
    last_edit: Vec<Option<Instant>>,
    edits: usize,
    violations: Vec<String>,
    rate_limit_once: bool,
    rate_limited: usize,
    /// Every call that changed the thread, in order: `post m1`, `edit m0`.
    log: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct FakeSink(Arc<Mutex<Shown>>);

impl FakeSink {
    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.0.lock().unwrap()
    }
}

fn check(reply: &Reply, v: &mut Vec<String>) -> String {
    let pages = slack::render_pages(reply);
    let text = pages.first().map(|m| m.text.clone()).unwrap_or_default();
    if pages.len() != 1 && slack::render_tail(reply).text.chars().count() > slack::TEXT_LIMIT {
        v.push("does not fit one message".into());
    }
    if text.chars().count() > slack::TEXT_LIMIT {
        v.push(format!("{} chars", text.chars().count()));
    }
    [reply.status.clone(), Some(reply.body.clone()), reply.footer.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n")
}

impl ThreadSink for FakeSink {
    fn platform(&self) -> Platform {
        Platform::Slack
    }
    fn page_budget(&self) -> Budget {
        Budget::utf16(3_100).unwrap()
    }
    fn buckets(&self, _: &Target, op: Op) -> Vec<BucketSpec> {
        vec![BucketSpec { key: format!("fake:{op:?}"), per_second: 50.0, burst: 5.0 }]
    }
    fn post<'a>(&'a self, _: &'a Target, i: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let mut s = self.shown();
            if s.rate_limit_once {
                s.rate_limit_once = false;
                s.rate_limited += 1;
                return Err(PlatformError::RateLimited { retry_after: Duration::from_millis(300), global: false });
            }
            let text = check(reply, &mut s.violations);
            if i != s.posts.len() {
                let n = s.posts.len();
                s.violations.push(format!("post of slot {i} with {n} posted"));
            }
            let id = format!("m{}", s.posts.len());
            s.log.push(format!("post {id}"));
            s.posts.push(id.clone());
            s.texts.push(text);
            s.last_edit.push(Some(Instant::now()));
            Ok(Posted { message: Owned { channel: "C1".into(), id, via: Via::Channel }, rate_limit: None })
        }
        .boxed()
    }
    fn edit<'a>(&'a self, _: &'a Target, m: &'a Owned, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let mut s = self.shown();
            let i: usize = m.id[1..].parse().unwrap();
            if s.last_edit[i].is_some_and(|t| t.elapsed() < EDIT_GAP) {
                s.violations.push(format!("edit of m{i} too soon"));
            }
            s.texts[i] = check(reply, &mut s.violations);
            s.log.push(format!("edit m{i}"));
            s.last_edit[i] = Some(Instant::now());
            s.edits += 1;
            Ok(Posted { message: m.clone(), rate_limit: None })
        }
        .boxed()
    }
    fn private<'a>(&'a self, _: &'a Target, _: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        async { Ok(()) }.boxed()
    }
}

fn settings() -> StreamSettings {
    StreamSettings {
        poll: Duration::from_millis(50),
        claim_ttl: Duration::from_millis(800),
        cadence: Duration::from_millis(100),
        ..StreamSettings::default()
    }
}

async fn chat_task(pool: &PgPool, cmd: &str) -> (Uuid, Uuid) {
    let install = Uuid::now_v7();
    sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'slack', 'T1', 't')")
        .bind(install)
        .execute(pool)
        .await
        .unwrap();
    slack_thread_task(pool, install, "1.2", cmd).await
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn streams_first_reply_live_output_rollover_and_final_message_across_a_restart() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let (task, job) = chat_task(&pool, "seq 10000").await;
    let sink = FakeSink::default();
    sink.shown().rate_limit_once = true;
    let sinks = Sinks::new().with(Arc::new(sink.clone()));
    let (stop_a, rx_a) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    spawn_stream_worker(pool.clone(), sinks.clone(), settings(), rx_a);
    wait_for("the first reply", || !sink.shown().posts.is_empty()).await;
    assert!(started.elapsed() < Duration::from_secs(1), "first reply within a second");
    assert!(sink.shown().texts[0].contains("Queued"));

    let d = dispatcher(&pool);
    let n = node(&pool, "n1", host_caps()).await;
    let lease = d.lease(n, 1, Duration::from_secs(2)).await.unwrap().remove(0);
    assert_eq!(lease.job_id, job);
    let lref = LeaseRef { job_id: job, attempt: lease.attempt, lease_token: lease.lease_token };
    let mut full = String::new();
    for batch in 0..20u64 {
        let data: String = (batch * 500..(batch + 1) * 500).map(|i| format!("{i}\n")).collect();
        full.push_str(&data);
        let chunks = vec![OutputChunk { stream: Stream::Stdout, seq: batch, data }];
        d.output(n, &OutputBatch { lease: lref, chunks }).await.unwrap();
        if batch == 6 {
            wait_for("live output", || sink.shown().texts.iter().any(|t| t.contains("3499"))).await;
            // Restart: stop this replica; another one continues the same messages.
            stop_a.send(true).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (_stop_b, rx_b) = tokio::sync::watch::channel(false);
    spawn_stream_worker(pool.clone(), sinks, settings(), rx_b);
    let outcome =
        Outcome { exit_code: Some(0), output_bytes: full.len() as u64, ..Outcome::new(FinishStatus::Succeeded, 1500) };
    d.finish(n, &FinishRequest { lease: lref, outcome }).await.unwrap();
    let closed = || async {
        sqlx::query_scalar::<_, String>("SELECT state FROM stream_records WHERE task_id = $1")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let start = Instant::now();
    while closed().await != "closed" {
        assert!(start.elapsed() < Duration::from_secs(20), "stream did not close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = sink.shown();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.rate_limited, 1);
    assert_eq!(s.posts.len(), 4, "rolled over to the message cap, no duplicate post");
    assert!(s.edits > 0);
    let last = s.texts.last().unwrap();
    assert!(last.contains("9999"), "the end of the output is shown");
    assert!(last.contains("Succeeded · exit 0 · 1.5 s"));
    assert!(last.contains("cynode logs") && last.contains(&format!("/v1/jobs/{job}/output")));
    assert!(s.texts[0].contains("\n0\n") && s.texts[0].contains("Job"));
}

#[tokio::test]
async fn a_page_that_fills_up_keeps_what_it_showed_and_the_new_output_starts_the_next() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let (_task, job) = chat_task(&pool, "seq 2000").await;
    let sink = FakeSink::default();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    spawn_stream_worker(pool.clone(), Sinks::new().with(Arc::new(sink.clone())), settings(), rx);
    let d = dispatcher(&pool);
    let n = node(&pool, "n1", host_caps()).await;
    let lease = d.lease(n, 1, Duration::from_secs(2)).await.unwrap().remove(0);
    let lref = LeaseRef { job_id: job, attempt: lease.attempt, lease_token: lease.lease_token };
    // 40 lines of 30 characters at a time, each batch shown before the next: a 3,100-character page holds two.
    for batch in 0..5u64 {
        let data: String = (batch * 40..(batch + 1) * 40).map(|i| format!("{i:05} {}\n", "x".repeat(23))).collect();
        let last = format!("{:05} ", (batch + 1) * 40 - 1);
        d.output(
            n,
            &OutputBatch { lease: lref, chunks: vec![OutputChunk { stream: Stream::Stdout, seq: batch, data }] },
        )
        .await
        .unwrap();
        wait_for("the batch on screen", || sink.shown().texts.iter().any(|t| t.contains(&last))).await;
    }
    let before = {
        let s = sink.shown();
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        assert_eq!(s.posts.len(), 3, "{:?}", s.log);
        for (full, next) in [("edit m0", "post m1"), ("edit m1", "post m2")] {
            let rollover = s.log.iter().position(|c| c == next).unwrap();
            assert!(!s.log[rollover..].iter().any(|c| c == full), "a full page is not edited again: {:?}", s.log);
        }
        // Each full page ends where it was last shown (a whole batch); the next page starts with the next batch.
        assert!(s.texts[0].contains("00079 ") && !s.texts[0].contains("00080 "), "{}", s.texts[0]);
        assert!(s.texts[1].starts_with("```\n00080 ") && s.texts[1].contains("00159 "), "{}", s.texts[1]);
        assert!(!s.texts[1].contains("00160 ") && s.texts[2].starts_with("```\n00160 "), "{}", s.texts[2]);
        s.log.len()
    };

    // The end: the last page gets the last output with the final footer, then the first page's status line.
    let data: String = (200..210).map(|i| format!("{i:05}\n")).collect();
    d.output(n, &OutputBatch { lease: lref, chunks: vec![OutputChunk { stream: Stream::Stdout, seq: 5, data }] })
        .await
        .unwrap();
    d.finish(n, &FinishRequest { lease: lref, outcome: succeeded(2000) }).await.unwrap();
    wait_for("the final status", || sink.shown().texts[0].starts_with("✅")).await;
    let s = sink.shown();
    assert!(s.texts[2].contains("00209") && s.texts[2].contains("Succeeded · exit 0"), "{}", s.texts[2]);
    assert_eq!(s.log[before..], ["edit m2", "edit m0"], "output first, status last: {:?}", s.log);
}

// The Telegram stream tests live beside this file and run under the `stream` filter.
#[path = "stream_telegram.rs"]
mod telegram;
