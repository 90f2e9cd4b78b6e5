//! The finish writers: collect pending finishes, settle them in one transaction, answer each caller.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

use super::{Pending, Settled};
use crate::outbox::{self, EventType};

/// Locks the tasks of the batch's jobs (in id order) before anything reads job states: the statements after it
/// take their snapshot once the lock is held, so two transactions finishing jobs of one task settle it in turn,
/// the second one seeing the first one's result. `NO KEY UPDATE`, the lock the state update takes anyway: it
/// does not block the key-share locks of rows referencing the task (a heartbeat's `task_events` row), which
/// would otherwise deadlock with a heartbeat that holds one of the batch's jobs.
const LOCK_TASKS: &str = "
SELECT t.id FROM tasks t
WHERE t.id IN (SELECT task_id FROM jobs WHERE id = ANY ($1::uuid[]))
ORDER BY t.id
FOR NO KEY UPDATE OF t";

/// Then locks the batch's jobs in id order (as heartbeats do), so a batch and a heartbeat naming the same jobs
/// cannot deadlock.
const LOCK_JOBS: &str = "SELECT id FROM jobs WHERE id = ANY ($1::uuid[]) ORDER BY id FOR UPDATE";

/// Stores carried output of the finishes whose lease is current. The job rows are locked (`FOR UPDATE`) so
/// the lease stays current until the commit, and the output is written before the job's final state, as a
/// separate upload would have been (subscribers of `task_events` see output before the end).
const STORE_OUTPUT: &str = "
WITH held AS (
    SELECT j.id, j.attempt, j.lease_token, j.node_id
    FROM jobs j
    JOIN unnest($1::uuid[], $2::int4[], $3::uuid[], $4::uuid[]) AS l(job_id, attempt, token, node_id)
      ON j.id = l.job_id AND j.attempt = l.attempt AND j.lease_token = l.token AND j.node_id = l.node_id
    WHERE j.state IN ('leased', 'running')
    ORDER BY j.id
    FOR UPDATE OF j
)
INSERT INTO job_output_chunks (job_id, attempt, stream, seq, data)
SELECT c.job_id, c.attempt, c.stream, c.seq, c.data
FROM unnest($5::uuid[], $6::int4[], $7::uuid[], $8::uuid[], $9::text[], $10::int8[], $11::bytea[])
     WITH ORDINALITY AS c(job_id, attempt, token, node_id, stream, seq, data, ord)
JOIN held h ON h.id = c.job_id AND h.attempt = c.attempt AND h.lease_token = c.token AND h.node_id = c.node_id
ORDER BY c.ord
ON CONFLICT DO NOTHING";

/// Records the results whose lease is current and settles their tasks. Returns, per recorded finish, its
/// position in the input (1-based), the job's and task's new states and the task's install.
const SETTLE: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int4[], $3::uuid[], $4::uuid[], $5::text[], $6::jsonb[])
        WITH ORDINALITY AS i(job_id, attempt, token, node_id, state, result, ord)
),
f AS (
    UPDATE jobs j SET state = i.state, result = i.result, finished_at = now(), lease_expires_at = NULL
    FROM input i
    WHERE j.id = i.job_id AND j.attempt = i.attempt AND j.lease_token = i.token AND j.node_id = i.node_id
      AND j.state IN ('leased', 'running')
    RETURNING j.id, j.task_id, j.state, i.ord
),
per_task AS (
    SELECT task_id, array_agg(id) AS ids, array_agg(state) AS states FROM f GROUP BY task_id
),
t AS (
    UPDATE tasks SET state = s.state, updated_at = now()
    FROM (SELECT p.task_id,
                 task_state_of(ARRAY(SELECT state FROM jobs WHERE task_id = p.task_id AND id <> ALL (p.ids))
                               || p.states) AS state
          FROM per_task p) s
    WHERE tasks.id = s.task_id AND tasks.state IS DISTINCT FROM s.state
    RETURNING tasks.id, tasks.state
)
SELECT f.ord, f.state, f.task_id, t.state, tk.install_id
FROM f LEFT JOIN t ON t.id = f.task_id JOIN tasks tk ON tk.id = f.task_id";

/// How often a batch that hit a deadlock or serialization failure is retried whole.
const TRANSIENT_RETRIES: usize = 3;

/// Collects and writes batches until the queue closes (the dispatcher was dropped).
pub(super) async fn run(pool: PgPool, max_batch: usize, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        {
            // Take whatever is pending (at least one): while one writer commits, the next batch gathers.
            let mut rx = queue.lock().await;
            if rx.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        write(&pool, batch).await;
    }
}

/// Settles `batch`; finishes naming a job that is already in the batch (a retry racing its original) go into
/// a later batch, so each job is settled by one finish at a time and a refused one stores no output.
async fn write(pool: &PgPool, mut batch: Vec<Pending>) {
    while !batch.is_empty() {
        let mut seen = HashSet::with_capacity(batch.len());
        let (first, repeats): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| seen.insert(p.lease.job_id));
        write_distinct(pool, first).await;
        batch = repeats;
    }
}

async fn write_distinct(pool: &PgPool, mut batch: Vec<Pending>) {
    batch.sort_by_key(|p| p.lease.job_id);
    let started = std::time::Instant::now();
    let mut result = settle(pool, &batch).await;
    for _ in 0..TRANSIENT_RETRIES {
        match &result {
            Err(e) if is_transient(e) => result = settle(pool, &batch).await,
            _ => break,
        }
    }
    match result {
        Ok(settled) => {
            tracing::debug!(
                batch.size = batch.len(),
                duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "finishes settled"
            );
            for (p, s) in batch.into_iter().zip(settled) {
                // The caller may have given up waiting; the result is recorded all the same.
                let _ = p.done.send(Ok(s));
            }
        }
        Err(e) if batch.len() > 1 => {
            // One odd finish must not fail the others: settle them one by one, each answered with its own result.
            tracing::warn!(error = %e, batch.size = batch.len(), "finish batch failed; settling its finishes one by one");
            for p in batch {
                let result = settle(pool, std::slice::from_ref(&p)).await;
                let _ = p.done.send(result.map(|mut s| s.remove(0)));
            }
        }
        Err(e) => {
            if let Some(p) = batch.pop() {
                tracing::error!(error = %e, job.id = %p.lease.job_id, "recording a job's result failed");
                let _ = p.done.send(Err(e));
            }
        }
    }
}

/// One transaction for `batch`; the answer for each finish, in order.
async fn settle(pool: &PgPool, batch: &[Pending]) -> Result<Vec<Settled>, sqlx::Error> {
    let ids: Vec<Uuid> = batch.iter().map(|p| p.lease.job_id).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_TASKS).bind(&ids).execute(&mut *tx).await?;
    sqlx::query(LOCK_JOBS).bind(&ids).execute(&mut *tx).await?;
    if batch.iter().any(|p| !p.output.is_empty()) {
        store_output(&mut tx, batch).await?;
    }
    let attempts: Vec<i32> = batch.iter().map(|p| p.lease.attempt).collect();
    let tokens: Vec<Uuid> = batch.iter().map(|p| p.lease.lease_token).collect();
    let nodes: Vec<Uuid> = batch.iter().map(|p| p.node).collect();
    let states: Vec<&str> = batch.iter().map(|p| p.state).collect();
    let results: Vec<&serde_json::Value> = batch.iter().map(|p| &p.result).collect();
    type Row = (i64, String, Uuid, Option<String>, Option<Uuid>);
    let rows: Vec<Row> = sqlx::query_as(SETTLE)
        .bind(&ids)
        .bind(&attempts)
        .bind(&tokens)
        .bind(&nodes)
        .bind(&states)
        .bind(&results)
        .fetch_all(&mut *tx)
        .await?;

    let mut events = Vec::with_capacity(rows.len() + 1);
    let mut tasks_done = HashSet::new();
    let mut recorded = HashMap::with_capacity(rows.len());
    for (ord, state, task_id, task_state, install_id) in rows {
        let Some(p) = usize::try_from(ord).ok().and_then(|o| batch.get(o.wrapping_sub(1))) else { continue };
        let payload = serde_json::json!({
            "job_id": p.lease.job_id, "task_id": task_id, "install_id": install_id, "attempt": p.lease.attempt,
            "state": state, "outcome": without_vectors(&p.result),
        });
        events.push((EventType::JobFinished, p.lease.job_id, payload));
        if let Some(ts) = task_state.filter(|s| matches!(s.as_str(), "succeeded" | "failed" | "cancelled"))
            && tasks_done.insert(task_id)
        {
            let payload = serde_json::json!({ "task_id": task_id, "install_id": install_id, "state": ts });
            events.push((EventType::TaskFinished, task_id, payload));
        }
        recorded.insert(ord, state);
    }
    let emitted = outbox::emit_many(&mut tx, &events).await? > 0;
    tx.commit().await?;
    Ok((1..)
        .zip(batch)
        .map(|(ord, _)| match recorded.remove(&ord) {
            Some(state) => Settled::Recorded { state, emitted },
            None => Settled::NotCurrent,
        })
        .collect())
}

/// An outcome for a webhook payload: an embed job's vectors stay out (they are large, and derived from the texts
/// they embed); `embeddings_count` says how many there were.
fn without_vectors(result: &serde_json::Value) -> std::borrow::Cow<'_, serde_json::Value> {
    match result.get("embeddings") {
        Some(v) => {
            let n = v.as_array().map_or(0, Vec::len);
            let mut out = result.clone();
            if let Some(o) = out.as_object_mut() {
                o.remove("embeddings");
                o.insert("embeddings_count".into(), n.into());
            }
            std::borrow::Cow::Owned(out)
        }
        None => std::borrow::Cow::Borrowed(result),
    }
}

async fn store_output(conn: &mut PgConnection, batch: &[Pending]) -> Result<(), sqlx::Error> {
    let with_output = || batch.iter().filter(|p| !p.output.is_empty());
    let chunks = || with_output().flat_map(|p| p.output.iter().map(move |c| (p, c)));
    let l_ids: Vec<Uuid> = with_output().map(|p| p.lease.job_id).collect();
    let l_attempts: Vec<i32> = with_output().map(|p| p.lease.attempt).collect();
    let l_tokens: Vec<Uuid> = with_output().map(|p| p.lease.lease_token).collect();
    let l_nodes: Vec<Uuid> = with_output().map(|p| p.node).collect();
    let ids: Vec<Uuid> = chunks().map(|(p, _)| p.lease.job_id).collect();
    let attempts: Vec<i32> = chunks().map(|(p, _)| p.lease.attempt).collect();
    let tokens: Vec<Uuid> = chunks().map(|(p, _)| p.lease.lease_token).collect();
    let nodes: Vec<Uuid> = chunks().map(|(p, _)| p.node).collect();
    let streams: Vec<&str> = chunks().map(|(_, c)| c.stream.as_str()).collect();
    let seqs: Vec<i64> = chunks().map(|(_, c)| i64::try_from(c.seq).unwrap_or(i64::MAX)).collect();
    let data: Vec<&[u8]> = chunks().map(|(_, c)| c.data.as_bytes()).collect();
    sqlx::query(STORE_OUTPUT)
        .bind(&l_ids)
        .bind(&l_attempts)
        .bind(&l_tokens)
        .bind(&l_nodes)
        .bind(&ids)
        .bind(&attempts)
        .bind(&tokens)
        .bind(&nodes)
        .bind(&streams)
        .bind(&seqs)
        .bind(&data)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deadlock or serialization failure: the same batch can succeed on a retry.
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}
