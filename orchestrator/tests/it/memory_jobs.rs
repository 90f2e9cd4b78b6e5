//! Memory embeddings as `embed` jobs (`JobEmbedder`) against a real PostgreSQL and the real dispatcher, with a
//! fake inference node that leases and finishes jobs through the dispatcher as a node agent does: one job per
//! batch (split above the cap), vectors in input order, a worker pass as one job, a failed job's message as the
//! error, and an immediate answer when no node can run the job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::memory::{
    EmbedError, Embedder, InputKind, JobEmbedder, JobEmbedderConfig, Memories, MemorySettings, NewMemory, Provenance,
    Recall, Scope, Viewer,
};
use cynode_protocol::{
    Capabilities, EMBED_LABEL, EmbedInputType, EmbedSpec, ExecutorKind, FinishRequest, FinishStatus, JobSpec, LeaseRef,
    MAX_EMBED_INPUTS, Usage,
};
use cynode_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support;

fn caps(models: &[&str], embeds: bool) -> Capabilities {
    let mut labels = BTreeMap::new();
    if embeds {
        labels.insert(EMBED_LABEL.to_owned(), "1".to_owned());
    }
    Capabilities {
        executors: vec![ExecutorKind::Inference],
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        labels,
        max_concurrent_jobs: 4,
        ..Capabilities::default()
    }
}

/// A vector that names its text: `[length, first byte, 1]`.
fn vector_of(text: &str) -> Vec<f32> {
    vec![text.len() as f32, f32::from(text.as_bytes().first().copied().unwrap_or(0)), 1.0]
}

/// A fake inference node: leases jobs and finishes embed jobs with [`vector_of`] each text (failing a batch
/// that contains "explode" the way a node reports a server error); records every embed spec it ran.
fn fake_node(dispatcher: Arc<Dispatcher>, node: Uuid) -> Arc<Mutex<Vec<EmbedSpec>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok(leases) = dispatcher.lease(node, 4, Duration::from_millis(200)).await else { return };
            for lease in leases {
                let JobSpec::Embed(spec) = lease.spec.clone() else { panic!("not an embed job: {:?}", lease.spec) };
                log.lock().expect("log").push(spec.clone());
                let mut outcome = support::succeeded(5);
                outcome.exit_code = None;
                if spec.input.iter().any(|t| t.contains("explode")) {
                    outcome.status = FinishStatus::Error;
                    outcome.message = Some("the inference server answered 500: CUDA out of memory".into());
                } else {
                    outcome.embeddings = spec.input.iter().map(|t| vector_of(t)).collect();
                    outcome.usage = Some(Usage { prompt_tokens: spec.input.len() as u64, completion_tokens: 0 });
                }
                let lease = LeaseRef { job_id: lease.job_id, attempt: lease.attempt, lease_token: lease.lease_token };
                dispatcher.finish(node, &FinishRequest { lease, outcome }).await.expect("finish");
            }
        }
    });
    seen
}

fn embedder(pool: &PgPool, dispatcher: &Arc<Dispatcher>, model: &str) -> JobEmbedder {
    let config =
        JobEmbedderConfig { model: model.into(), input_type: true, timeout: Duration::from_secs(20), max_attempts: 1 };
    JobEmbedder::new(pool.clone(), dispatcher.clone(), config).expect("embedder")
}

async fn embed_jobs(pool: &PgPool) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT t.source, j.state, jsonb_array_length(j.spec->'input')::int8 FROM jobs j JOIN tasks t ON t.id = j.task_id
         WHERE j.spec->>'kind' = 'embed' ORDER BY j.created_at",
    )
    .fetch_all(pool)
    .await
    .expect("jobs")
}

#[tokio::test]
async fn a_call_is_one_job_per_batch_with_the_vectors_in_order() {
    let db = TestDb::new().await;
    let dispatcher = support::dispatcher(&db.pool);
    let node = support::node(&db.pool, "gpu", caps(&["e5"], true)).await;
    let seen = fake_node(dispatcher.clone(), node);
    let e = embedder(&db.pool, &dispatcher, "e5");
    // A deployment-wide webhook subscription to finished jobs: it hears of embed jobs, not their vectors.
    sqlx::query(
        "INSERT INTO subscriptions (id, name, url, event_types, secrets) VALUES ($1, 'all', 'https://h.example', $2, '')",
    )
    .bind(Uuid::now_v7())
    .bind(vec!["job.finished"])
    .execute(&db.pool)
    .await
    .expect("subscription");

    let texts: Vec<String> =
        (0..MAX_EMBED_INPUTS + 6).map(|i| format!("{}memory {i}", char::from(b'a' + (i % 26) as u8))).collect();
    let vectors = e.embed(&texts, InputKind::Passage).await.expect("embed");
    assert_eq!(vectors, texts.iter().map(|t| vector_of(t)).collect::<Vec<_>>(), "one vector per text, in order");
    let jobs = embed_jobs(&db.pool).await;
    assert_eq!(
        jobs,
        vec![("memory".into(), "succeeded".into(), MAX_EMBED_INPUTS as i64), ("memory".into(), "succeeded".into(), 6)],
        "one job per batch of at most {MAX_EMBED_INPUTS}, under memory tasks"
    );
    let delivered: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload->'outcome' FROM deliveries WHERE event_type = 'job.finished'")
            .fetch_all(&db.pool)
            .await
            .expect("deliveries");
    assert_eq!(delivered.len(), 2);
    assert!(delivered.iter().all(|o| o.get("embeddings").is_none()), "no vectors in webhooks: {delivered:?}");
    assert_eq!(delivered.iter().filter_map(|o| o["embeddings_count"].as_u64()).sum::<u64>(), texts.len() as u64);
    {
        let seen = seen.lock().expect("seen");
        assert!(seen.iter().all(|s| s.model == "e5" && s.input_type == Some(EmbedInputType::Passage)));
    }
    let q = e.embed(&["where is the deploy key".to_owned()], InputKind::Query).await.expect("query");
    assert_eq!(q, vec![vector_of("where is the deploy key")]);
    assert_eq!(seen.lock().expect("seen").last().and_then(|s| s.input_type), Some(EmbedInputType::Query));
    // Usage accounting like every model call: the ledger has the embed jobs, under the memory task's requester.
    let ledger: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT requester, model, prompt_tokens FROM usage_ledger ORDER BY at")
            .fetch_all(&db.pool)
            .await
            .expect("ledger");
    assert_eq!(ledger.len(), 3, "{ledger:?}");
    assert!(ledger.iter().all(|(who, model, _)| who == "memory" && model == "e5"), "{ledger:?}");
    assert_eq!(ledger.iter().map(|l| l.2).sum::<i64>(), i64::try_from(texts.len() + 1).expect("n"));
}

#[tokio::test]
async fn a_failed_job_says_why_and_no_node_means_an_answer_at_once() {
    let db = TestDb::new().await;
    let dispatcher = support::dispatcher(&db.pool);
    let node = support::node(&db.pool, "gpu", caps(&["e5"], true)).await;
    // A node that serves `old-e5` but predates embed jobs (no label): it must never get one.
    support::node(&db.pool, "old", caps(&["old-e5"], false)).await;
    fake_node(dispatcher.clone(), node);

    let e = embedder(&db.pool, &dispatcher, "e5");
    let err = e.embed(&["fine".to_owned(), "explode".to_owned()], InputKind::Passage).await.expect_err("failed job");
    assert!(matches!(err, EmbedError::JobFailed { .. }), "{err:?}");
    let m = err.to_string();
    assert!(m.contains("failed") && m.contains("CUDA out of memory"), "{m}");

    for (model, expect) in [("bge-m3", "No online node serves model `bge-m3`"), ("old-e5", "older cynode-node")] {
        let started = Instant::now();
        let err = embedder(&db.pool, &dispatcher, model).embed(&["x".to_owned()], InputKind::Query).await;
        let err = err.expect_err("nothing can serve it");
        assert!(started.elapsed() < Duration::from_secs(2), "said at once, not after the 20 s timeout");
        assert!(matches!(err, EmbedError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains(expect), "{err}");
    }
    assert_eq!(embed_jobs(&db.pool).await.len(), 1, "no job was queued for work that cannot run");
}

#[tokio::test]
async fn a_worker_pass_embeds_pending_memories_as_one_job_and_recall_uses_the_vectors() {
    let db = TestDb::new().await;
    let dispatcher = support::dispatcher(&db.pool);
    let admin = Viewer { install_id: None, user: "admin-token".into(), approver: true, ..Viewer::default() };
    let settings = || MemorySettings { inline_embed_timeout: Duration::from_secs(5), ..MemorySettings::default() };
    // Written while no embedder was configured: keyword-only until the worker embeds them.
    let keyword_only = Memories::new(db.pool.clone(), None, settings());
    for text in ["the deploy key is in vault", "lunch is at noon", "standup moved to 10", "prod is eu-west", "db is pg"]
    {
        keyword_only.add(&admin, NewMemory::new(text, Scope::Shared, Provenance::Admin)).await.expect("add");
    }
    let node = support::node(&db.pool, "gpu", caps(&["e5"], true)).await;
    let seen = fake_node(dispatcher.clone(), node);
    let mem = Memories::new(db.pool.clone(), Some(Arc::new(embedder(&db.pool, &dispatcher, "e5"))), settings());
    let pass = mem.pass().await.expect("pass");
    assert_eq!((pass.embedded, pass.error), (5, None));
    assert_eq!(embed_jobs(&db.pool).await.len(), 1, "the pass's batch is one job");
    assert_eq!(seen.lock().expect("seen")[0].input.len(), 5);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM memories WHERE embedding_model IS DISTINCT FROM 'e5'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(pending, 0);
    let r = mem.recall(&admin, &Recall { query: "deploy key".into(), limit: 3 }).await.expect("recall");
    assert!(r.hybrid && r.notice.is_none(), "{:?}", r.notice);
    assert_eq!(r.memories.first().map(|m| m.0.text.as_str()), Some("the deploy key is in vault"));

    // Vectors read long ago leave the jobs' results (the rest of each result stays); fresh ones are kept.
    let with_vectors = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE result ? 'embeddings'")
            .fetch_one(&db.pool)
            .await
            .expect("count")
    };
    let fresh = with_vectors().await;
    assert!(fresh >= 2, "the pass's job and the recall's: {fresh}");
    assert_eq!(mem.pass().await.expect("pass").results_cleared, 0, "fresh results are kept");
    sqlx::query("UPDATE jobs SET finished_at = now() - interval '11 minutes' WHERE result ? 'embeddings'")
        .execute(&db.pool)
        .await
        .expect("age them");
    assert_eq!(mem.pass().await.expect("pass").results_cleared, u64::try_from(fresh).expect("n"));
    assert_eq!(with_vectors().await, 0);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE result->>'status' = 'succeeded'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(kept, fresh, "the outcome itself stays");
}

#[tokio::test]
async fn a_caller_that_stops_waiting_leaves_no_job_behind() {
    let db = TestDb::new().await;
    let dispatcher = support::dispatcher(&db.pool);
    // Online and able, but it leases nothing in this test: the job stays queued.
    support::node(&db.pool, "gpu", caps(&["e5"], true)).await;
    let e = embedder(&db.pool, &dispatcher, "e5");
    let texts = ["what is the deploy key".to_owned()];
    let waited = tokio::time::timeout(Duration::from_millis(300), e.embed(&texts, InputKind::Query)).await;
    assert!(waited.is_err(), "nothing answered");
    for _ in 0..100 {
        let jobs = embed_jobs(&db.pool).await;
        assert_eq!(jobs.len(), 1);
        if jobs[0].1 == "cancelled" {
            let task: String = sqlx::query_scalar("SELECT state FROM tasks WHERE source = 'memory'")
                .fetch_one(&db.pool)
                .await
                .expect("task");
            assert_eq!(task, "cancelled", "the task is settled too");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the abandoned job was not cancelled: {:?}", embed_jobs(&db.pool).await);
}
