use std::collections::HashSet;
use std::time::Duration;

use cynode_orchestrator::dispatch::DispatchError;
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishRequest, FinishStatus, GpuInfo, LeaseRef, Outcome, OutputBatch, OutputChunk,
    Requirements, Stream,
};
use cynode_tests::TestDb;

use crate::support::*;

fn ok_outcome() -> Outcome {
    Outcome { exit_code: Some(0), output_bytes: 3, ..Outcome::new(FinishStatus::Succeeded, 5) }
}

fn lease_ref(l: &cynode_protocol::Lease) -> LeaseRef {
    LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token }
}

#[tokio::test]
async fn racing_claimers_never_share_a_job() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let mut nodes = Vec::new();
    for i in 0..12 {
        nodes.push(node(&db.pool, &format!("n{i}"), host_caps()).await);
    }
    let mut jobs = HashSet::new();
    for i in 0..40 {
        jobs.insert(enqueue(&db.pool, &host_job(&format!("echo {i}"))).await);
    }
    // 12 nodes × 4 claim rounds × up to 3 jobs each, all at once, for 40 jobs.
    let mut handles = Vec::new();
    for n in nodes {
        let d = d.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..4 {
                got.extend(d.lease(n, 3, Duration::ZERO).await.expect("lease").into_iter().map(|l| l.job_id));
            }
            got
        }));
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.extend(h.await.expect("task"));
    }
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a job was leased twice");
    assert_eq!(unique, jobs, "every job leased exactly once");
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempt FROM jobs").fetch_all(&db.pool).await.expect("attempts");
    assert!(attempts.iter().all(|a| *a == 1));
}

#[tokio::test]
async fn long_poll_wakes_on_announce() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "waiter", host_caps()).await;
    let waiter = {
        let d = d.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let leases = d.lease(n, 1, Duration::from_secs(10)).await.expect("lease");
            (leases, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = enqueue(&db.pool, &host_job("true")).await;
    d.announce();
    let (leases, waited) = waiter.await.expect("join");
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].job_id, job);
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
}

#[tokio::test]
async fn claims_match_capabilities() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let plain = node(&db.pool, "plain", host_caps()).await;
    let gpu_caps = Capabilities {
        executors: vec![ExecutorKind::Host],
        gpus: vec![GpuInfo { name: "L4".into(), memory_mb: 24_000, utilization_pct: None }],
        labels: [("zone".to_string(), "eu".to_string())].into(),
        templates: vec!["py".into()],
        ..Capabilities::default()
    };
    let gpu = node(&db.pool, "gpu", gpu_caps).await;
    let mut job = host_job("nvidia-smi");
    job.requirements = Requirements {
        gpu_memory_mb: Some(16_000),
        labels: [("zone".to_string(), "eu".to_string())].into(),
        template: Some("py".into()),
        ..Requirements::default()
    };
    let id = enqueue(&db.pool, &job).await;
    assert!(d.lease(plain, 5, Duration::ZERO).await.expect("lease").is_empty(), "plain node must not get it");
    let got = d.lease(gpu, 5, Duration::ZERO).await.expect("lease");
    assert_eq!(got.iter().map(|l| l.job_id).collect::<Vec<_>>(), vec![id]);
}

#[tokio::test]
async fn a_job_behind_a_long_queue_of_other_nodes_work_is_found_in_priority_order() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let eu = Capabilities { labels: [("zone".to_string(), "eu".to_string())].into(), ..host_caps() };
    let node = node(&db.pool, "eu", eu).await;
    // The head of the queue is for nodes in another zone.
    let mut tx = db.pool.begin().await.expect("tx");
    let origin =
        cynode_orchestrator::tasks::Origin { requester: "U1".into(), source: "test".into(), ..Default::default() };
    let mut elsewhere = host_job("true");
    elsewhere.requirements.labels = [("zone".to_string(), "us".to_string())].into();
    elsewhere.priority = 5;
    for _ in 0..300 {
        let task = cynode_orchestrator::tasks::create_task(&mut tx, &origin, "run", "x", &serde_json::json!({}))
            .await
            .expect("task");
        cynode_orchestrator::tasks::create_job(&mut tx, task, &elsewhere).await.expect("job");
    }
    tx.commit().await.expect("commit");
    let mut mine = host_job("true");
    mine.requirements.labels = [("zone".to_string(), "eu".to_string())].into();
    let older = enqueue(&db.pool, &mine).await;
    let newer = enqueue(&db.pool, &mine).await;
    mine.priority = 1;
    let urgent = enqueue(&db.pool, &mine).await;
    let got: HashSet<_> =
        d.lease(node, 2, Duration::ZERO).await.expect("lease").into_iter().map(|l| l.job_id).collect();
    assert_eq!(got, HashSet::from([urgent, older]), "the node's best jobs, from behind the other nodes' work");
    let got: Vec<_> = d.lease(node, 5, Duration::ZERO).await.expect("lease").into_iter().map(|l| l.job_id).collect();
    assert_eq!(got, vec![newer]);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'queued'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(queued, 300, "the other zone's jobs stay queued");
}

/// What a claim costs must not depend on what the planner believes: statistics taken on an empty queue (as
/// after a quiet night) and the generic plan a pooled connection settles on after five claims. With those,
/// the claim used to scan and sort every queued job on each call; the ordered walk from the head of the node's
/// executor's queue reads a few index entries per claim, and none of the other executors' work ahead of it.
#[tokio::test]
async fn a_claim_reads_the_head_of_the_queue_whatever_the_statistics_say() {
    let db = TestDb::new().await;
    sqlx::query("ALTER TABLE jobs SET (autovacuum_enabled = false)").execute(&db.pool).await.expect("alter");
    sqlx::query("ANALYZE jobs").execute(&db.pool).await.expect("analyze");
    let node = node(&db.pool, "n", host_caps()).await;
    // Every connection of these pools uses generic plans; a server process reports what it read when it
    // exits, so each pool is closed before its reads are counted.
    let generic = || async {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(conn).await.map(|_| ())
                })
            })
            .connect(&db.url)
            .await
            .expect("pool")
    };
    // Rows and index entries of `jobs` read so far, once the reports of exited server processes have settled.
    let read = || async {
        let total = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'jobs')::int8
                      + (SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = 'jobs')::int8",
            )
            .fetch_one(&db.pool)
            .await
            .expect("stats")
        };
        let mut last = total().await;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = total().await;
            if now == last {
                break;
            }
            last = now;
        }
        last
    };
    let pool = generic().await;
    let mut tx = pool.begin().await.expect("tx");
    let origin =
        cynode_orchestrator::tasks::Origin { requester: "U1".into(), source: "test".into(), ..Default::default() };
    let job = host_job("true");
    for _ in 0..2000 {
        let task = cynode_orchestrator::tasks::create_task(&mut tx, &origin, "run", "x", &serde_json::json!({}))
            .await
            .expect("task");
        cynode_orchestrator::tasks::create_job(&mut tx, task, &job).await.expect("job");
    }
    // Ahead of them in the queue (older, more urgent): work for sandbox nodes, which this host node never reads.
    let task = cynode_orchestrator::tasks::create_task(&mut tx, &origin, "run", "x", &serde_json::json!({}))
        .await
        .expect("task");
    sqlx::query(
        "INSERT INTO jobs (id, task_id, executor, spec, priority, created_at)
         SELECT gen_random_uuid(), $1, 'docker', '{}', 5, now() - interval '1 hour' FROM generate_series(1, 2000)",
    )
    .bind(task)
    .execute(&mut *tx)
    .await
    .expect("docker jobs");
    tx.commit().await.expect("commit");
    pool.close().await;
    let before = read().await;

    let pool = generic().await;
    let d = dispatcher(&pool);
    let claims = 30;
    for _ in 0..claims {
        assert_eq!(d.lease(node, 1, Duration::ZERO).await.expect("lease").len(), 1);
    }
    drop(d);
    pool.close().await;
    let claimed = read().await - before;
    assert!(claimed > 0, "the claims' reads were reported");
    assert!(
        claimed < claims * 50,
        "{claims} claims read {claimed} rows and index entries of the jobs table (4,000 queued jobs, 2,000 of them \
         ahead for another executor)"
    );
}

#[tokio::test]
async fn the_head_of_a_long_queue_is_leased_in_priority_order() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let node = node(&db.pool, "any", host_caps()).await;
    let mut job = host_job("true");
    let mut ids = Vec::new();
    for i in 0..400 {
        job.priority = i % 3;
        ids.push((job.priority, enqueue(&db.pool, &job).await));
    }
    // Highest priority first, oldest first within a priority; each lease takes the next 32 (in any order).
    ids.sort_by_key(|(p, _)| -p);
    let expected: Vec<_> = ids.into_iter().map(|(_, id)| id).collect();
    for batch in expected.chunks(32) {
        let leased: HashSet<_> =
            d.lease(node, 32, Duration::ZERO).await.expect("lease").into_iter().map(|l| l.job_id).collect();
        assert_eq!(leased, batch.iter().copied().collect::<HashSet<_>>());
    }
}

#[tokio::test]
async fn preferred_node_gets_the_job_first_then_anyone() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let home = node(&db.pool, "home", host_caps()).await;
    let other = node(&db.pool, "other", host_caps()).await;
    let mut job = host_job("true");
    job.requirements.prefer_node = Some(home);
    enqueue(&db.pool, &job).await;
    assert!(d.lease(other, 1, Duration::ZERO).await.expect("lease").is_empty(), "held for its preferred node");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(d.lease(other, 1, Duration::ZERO).await.expect("lease").len(), 1, "anyone after the window");
}

#[tokio::test]
async fn output_is_idempotent_and_fenced() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "writer", host_caps()).await;
    enqueue(&db.pool, &host_job("echo")).await;
    let lease = d.lease(n, 1, Duration::ZERO).await.expect("lease").remove(0);
    let chunk = |seq, data: &str| OutputChunk { stream: Stream::Stdout, seq, data: data.into() };
    let batch = OutputBatch { lease: lease_ref(&lease), chunks: vec![chunk(1, "b"), chunk(0, "a")] };
    let ack = d.output(n, &batch).await.expect("output");
    assert_eq!((ack.stored, ack.duplicates, ack.cancel), (2, 0, false));
    // Retries and out-of-order duplicates store nothing twice.
    let again = OutputBatch { lease: lease_ref(&lease), chunks: vec![chunk(0, "a"), chunk(2, "c")] };
    let ack = d.output(n, &again).await.expect("output");
    assert_eq!((ack.stored, ack.duplicates), (1, 1));
    let text: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM job_output_chunks WHERE job_id = $1 ORDER BY seq")
        .bind(lease.job_id)
        .fetch_all(&db.pool)
        .await
        .expect("chunks");
    assert_eq!(text.concat(), b"abc");
    // A wrong token is refused.
    let mut forged = lease_ref(&lease);
    forged.lease_token = uuid::Uuid::new_v4();
    let err = d.output(n, &OutputBatch { lease: forged, chunks: vec![chunk(9, "x")] }).await.expect_err("fenced");
    assert!(matches!(err, DispatchError::StaleLease));
    // Too much at once is refused with a reason.
    let big = OutputBatch { lease: lease_ref(&lease), chunks: vec![chunk(3, &"x".repeat(300 * 1024))] };
    assert!(matches!(d.output(n, &big).await, Err(DispatchError::Invalid(_))));
}

#[tokio::test]
async fn finish_is_idempotent_and_refuses_a_different_retry() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "finisher", host_caps()).await;
    let id = enqueue(&db.pool, &host_job("true")).await;
    let lease = d.lease(n, 1, Duration::ZERO).await.expect("lease").remove(0);
    let req = FinishRequest { lease: lease_ref(&lease), outcome: ok_outcome() };
    let first = d.finish(n, &req).await.expect("finish");
    assert_eq!((first.state.as_str(), first.duplicate), ("succeeded", false));
    let retry = d.finish(n, &req).await.expect("retry");
    assert!(retry.duplicate);
    let mut different = req.clone();
    different.outcome.exit_code = Some(1);
    different.outcome.status = FinishStatus::Failed;
    assert!(matches!(d.finish(n, &different).await, Err(DispatchError::ConflictingFinish)));
    let other = node(&db.pool, "intruder", host_caps()).await;
    assert!(matches!(d.finish(other, &req).await, Err(DispatchError::StaleLease)), "not its lease");
    // A heartbeat racing the finish's response: the lease ended by its own finish, it was not lost.
    let hb = d.heartbeat(n, &[lease_ref(&lease)]).await.expect("heartbeat");
    assert!(hb.lost.is_empty() && hb.extended.is_empty(), "{hb:?}");
    let hb = d.heartbeat(other, &[lease_ref(&lease)]).await.expect("heartbeat of another node");
    assert_eq!(hb.lost, vec![id], "another node never held it");
    let task_state: String =
        sqlx::query_scalar("SELECT t.state FROM tasks t JOIN jobs j ON j.task_id = t.id WHERE j.id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("task");
    assert_eq!(task_state, "succeeded");
}

#[tokio::test]
async fn expired_leases_are_requeued_and_old_tokens_fenced() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let dead = node(&db.pool, "dead", host_caps()).await;
    let alive = node(&db.pool, "alive", host_caps()).await;
    let id = enqueue(&db.pool, &host_job("sleep 10")).await;
    let old = d.lease(dead, 1, Duration::ZERO).await.expect("lease").remove(0);
    tokio::time::sleep(Duration::from_millis(700)).await; // past the 600 ms lease
    let report = d.reap().await.expect("reap");
    assert_eq!(report.requeued, 1);
    assert_eq!(job_state(&db.pool, id).await, ("queued".to_string(), 1));
    let new = d.lease(alive, 1, Duration::ZERO).await.expect("re-lease").remove(0);
    assert_eq!((new.job_id, new.attempt), (id, 2));
    // The dead node comes back: every write with its old lease is refused.
    let hb = d.heartbeat(dead, &[lease_ref(&old)]).await.expect("heartbeat");
    assert_eq!(hb.lost, vec![id]);
    let chunk = OutputChunk { stream: Stream::Stdout, seq: 0, data: "late".into() };
    assert!(matches!(
        d.output(dead, &OutputBatch { lease: lease_ref(&old), chunks: vec![chunk] }).await,
        Err(DispatchError::StaleLease)
    ));
    let late = FinishRequest { lease: lease_ref(&old), outcome: ok_outcome() };
    assert!(matches!(d.finish(dead, &late).await, Err(DispatchError::StaleLease)));
    d.finish(alive, &FinishRequest { lease: lease_ref(&new), outcome: ok_outcome() }).await.expect("finish");
    assert_eq!(job_state(&db.pool, id).await, ("succeeded".to_string(), 2));
}

#[tokio::test]
async fn retries_back_off_and_end_after_max_attempts() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "flaky", host_caps()).await;
    let mut job = host_job("true");
    job.max_attempts = 2;
    let id = enqueue(&db.pool, &job).await;
    d.lease(n, 1, Duration::ZERO).await.expect("lease");
    tokio::time::sleep(Duration::from_millis(700)).await;
    d.reap().await.expect("reap");
    d.lease(n, 1, Duration::ZERO).await.expect("second lease, immediately");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let report = d.reap().await.expect("reap");
    assert_eq!(report.exhausted, 1);
    let (state, result): (String, serde_json::Value) =
        sqlx::query_as("SELECT state, result FROM jobs WHERE id = $1").bind(id).fetch_one(&db.pool).await.expect("job");
    assert_eq!(state, "failed");
    assert!(result["message"].as_str().expect("message").contains("lost 2 times"), "{result}");
}

#[tokio::test]
async fn backoff_delays_the_third_attempt() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "slow", host_caps()).await;
    let id = enqueue(&db.pool, &host_job("true")).await;
    let now = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT now()").fetch_one(&db.pool).await.expect("now")
    };
    let (mut before, mut after) = (now().await, now().await);
    for _ in 0..2 {
        d.lease(n, 1, Duration::ZERO).await.expect("lease");
        tokio::time::sleep(Duration::from_millis(700)).await;
        before = now().await;
        d.reap().await.expect("reap");
        after = now().await;
    }
    let run_after: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT run_after FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("run_after");
    // The reap's clock lies between `before` and `after`, so run_after - before is retry_base (100 ms) plus at
    // most the reap's own duration, however slow the machine (measuring against now() afterwards was not).
    let base = chrono::Duration::milliseconds(100);
    let delay = run_after - before;
    assert!(delay >= base && delay <= base + (after - before), "third attempt waits retry_base (100 ms): {delay}");
}

#[tokio::test]
async fn heartbeats_extend_leases_and_deliver_cancellation() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "beater", host_caps()).await;
    let id = enqueue(&db.pool, &host_job("sleep 60")).await;
    let lease = d.lease(n, 1, Duration::ZERO).await.expect("lease").remove(0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hb = d.heartbeat(n, &[lease_ref(&lease)]).await.expect("heartbeat");
        assert_eq!(hb.extended, vec![id]);
        d.reap().await.expect("reap");
    }
    assert_eq!(job_state(&db.pool, id).await, ("running".to_string(), 1), "kept alive past 2× the TTL");
    sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("cancel");
    let hb = d.heartbeat(n, &[lease_ref(&lease)]).await.expect("heartbeat");
    assert_eq!(hb.cancel, vec![id]);
}

#[tokio::test]
async fn orchestrator_times_out_jobs_whose_node_never_reports() {
    let db = TestDb::new().await;
    let mut settings = fast();
    settings.timeout_grace = Duration::from_millis(200);
    let d = cynode_orchestrator::dispatch::Dispatcher::new(db.pool.clone(), settings);
    let n = node(&db.pool, "silent", host_caps()).await;
    let mut job = host_job("sleep 100");
    if let cynode_protocol::JobSpec::Host(h) = &mut job.spec {
        h.timeout_s = 1;
    }
    let id = enqueue(&db.pool, &job).await;
    let lease = d.lease(n, 1, Duration::ZERO).await.expect("lease").remove(0);
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        d.heartbeat(n, &[lease_ref(&lease)]).await.expect("heartbeat");
        d.reap().await.expect("reap");
    }
    assert_eq!(job_state(&db.pool, id).await.0, "timed_out");
    let hb = d.heartbeat(n, &[lease_ref(&lease)]).await.expect("heartbeat");
    assert_eq!(hb.lost, vec![id], "the node learns to stop");
}

#[tokio::test]
async fn async_claims_never_share_a_job_and_are_fenced_the_same_way() {
    let db = TestDb::new().await;
    let settings = cynode_orchestrator::dispatch::DispatchSettings { async_claims: true, ..fast() };
    let d = cynode_orchestrator::dispatch::Dispatcher::new(db.pool.clone(), settings);
    let mut nodes = Vec::new();
    for i in 0..6 {
        nodes.push(node(&db.pool, &format!("a{i}"), host_caps()).await);
    }
    for i in 0..20 {
        enqueue(&db.pool, &host_job(&format!("echo {i}"))).await;
    }
    let mut handles = Vec::new();
    for n in nodes.clone() {
        let d = d.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..6 {
                got.extend(d.lease(n, 2, Duration::ZERO).await.expect("lease").into_iter().map(|l| (n, l)));
            }
            got
        }));
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.extend(h.await.expect("task"));
    }
    let unique: HashSet<_> = seen.iter().map(|(_, l)| l.job_id).collect();
    assert_eq!((unique.len(), seen.len()), (20, 20), "every job leased exactly once");
    let (holder, lease) = &seen[0];
    let other = nodes.iter().find(|n| *n != holder).expect("another node");
    let req = FinishRequest { lease: lease_ref(lease), outcome: ok_outcome() };
    assert!(matches!(d.finish(*other, &req).await, Err(DispatchError::StaleLease)));
    assert_eq!(d.finish(*holder, &req).await.expect("finish").state, "succeeded");
}
