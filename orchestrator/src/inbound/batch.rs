//! The group-commit writers: collect pending requests, write them with one statement, answer each caller.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, Notify, mpsc};
use uuid::Uuid;

use super::{InboundError, Pending, Recorded, RecorderSettings};

/// One statement, one transaction: new events, their conversations (distinct per batch, upserted so the
/// statement returns ids for existing ones too) and one task per new event. Returns the events that got a task,
/// which are exactly the new ones.
///
/// Requests with a replay key (a body hash, for webhooks whose delivery id is unsigned) first claim it in
/// `inbound_replay_keys`: a key not seen, or last seen longer ago than the window (`$22` seconds), is
/// (re)stamped and returned; a key seen within the window is locked and left alone, so its request is recorded
/// as a duplicate. Only the first request of a batch with a key can claim it.
const WRITE: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::int4[],
                         $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::uuid[], $13::text[], $14::text[],
                         $15::text[], $16::text[], $17::jsonb[], $18::text[], $19::text[], $20::uuid[],
                         $21::text[])
        WITH ORDINALITY AS i(id, install_id, platform, delivery_id, kind, payload, retry_num, retry_reason,
                             channel, thread, thread_ref, task_id, requester, source, command, text, args, state,
                             reply, conversation_id, replay_key, ord)
),
replay AS (
    INSERT INTO inbound_replay_keys (install_id, body_sha256, seen_at)
    SELECT DISTINCT ON (install_id, replay_key) install_id, replay_key, now()
    FROM input WHERE replay_key IS NOT NULL ORDER BY install_id, replay_key, ord
    ON CONFLICT (install_id, body_sha256) DO UPDATE SET seen_at = EXCLUDED.seen_at
        WHERE inbound_replay_keys.seen_at < EXCLUDED.seen_at - make_interval(secs => $22::float8)
    RETURNING install_id, body_sha256
),
event AS (
    INSERT INTO inbound_events (id, install_id, platform, delivery_id, kind, payload, retry_num, retry_reason)
    SELECT id, install_id, platform, delivery_id, kind, payload, retry_num, retry_reason FROM input i
    WHERE i.replay_key IS NULL
       OR (EXISTS (SELECT 1 FROM replay r WHERE r.install_id = i.install_id AND r.body_sha256 = i.replay_key)
           AND i.ord = (SELECT min(j.ord) FROM input j
                        WHERE j.install_id = i.install_id AND j.replay_key = i.replay_key))
    ORDER BY ord
    ON CONFLICT (platform, install_id, delivery_id) DO NOTHING
    RETURNING id
),
fresh AS (
    SELECT input.* FROM input JOIN event USING (id)
),
conversation AS (
    INSERT INTO conversations (id, install_id, channel, thread, thread_ref)
    SELECT DISTINCT ON (install_id, channel, thread) conversation_id, install_id, channel, thread, thread_ref
    FROM fresh ORDER BY install_id, channel, thread, ord
    ON CONFLICT (install_id, channel, thread) DO UPDATE SET thread_ref = EXCLUDED.thread_ref
    RETURNING id, install_id, channel, thread
),
task AS (
    INSERT INTO tasks (id, inbound_id, conversation_id, install_id, requester, source, command, text, args, state,
                       reply)
    SELECT f.task_id, f.id, c.id, f.install_id, f.requester, f.source, f.command, f.text, f.args, f.state, f.reply
    FROM fresh f JOIN conversation c USING (install_id, channel, thread)
    RETURNING inbound_id
)
SELECT inbound_id FROM task";

/// How often a batch that hit a deadlock or serialization failure is retried whole.
const TRANSIENT_RETRIES: usize = 3;

pub(super) struct Writer {
    pub(super) pool: PgPool,
    pub(super) settings: RecorderSettings,
    pub(super) wake: Arc<Notify>,
}

impl Writer {
    /// Collects and writes batches until every [`super::Recorder`] is dropped.
    pub(super) async fn run(self, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        loop {
            let batch = {
                let mut rx = queue.lock().await;
                let Some(first) = rx.recv().await else { return };
                let mut batch = Vec::with_capacity(self.settings.max_batch);
                batch.push(first);
                let deadline = tokio::time::Instant::now() + self.settings.linger;
                while batch.len() < self.settings.max_batch {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(mpsc::error::TryRecvError::Empty) if !self.settings.linger.is_zero() => {
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(p)) => batch.push(p),
                                Ok(None) | Err(_) => break,
                            }
                        }
                        Err(_) => break,
                    }
                }
                batch
            };
            self.write(batch).await;
        }
    }

    async fn write(&self, mut batch: Vec<Pending>) {
        batch.sort_by(|a, b| a.row.key().cmp(&b.row.key()));
        let mut result = self.insert(&batch).await;
        for _ in 0..TRANSIENT_RETRIES {
            match &result {
                Err(e) if is_transient(e) => result = self.insert(&batch).await,
                _ => break,
            }
        }
        match result {
            Ok(created) => self.answer(batch, &created),
            Err(e) if batch.len() > 1 && !is_connection(&e) => {
                tracing::warn!(error = %e, batch.size = batch.len(), "batch write failed; writing its requests one by one");
                for pending in batch {
                    let result = self.insert(std::slice::from_ref(&pending)).await;
                    match result {
                        Ok(created) => self.answer(vec![pending], &created),
                        Err(e) => fail(vec![pending], &e),
                    }
                }
            }
            Err(e) => fail(batch, &e),
        }
    }

    fn answer(&self, batch: Vec<Pending>, created: &HashSet<Uuid>) {
        let mut interpret = false;
        for p in batch {
            let outcome = if created.contains(&p.row.inbound_id) {
                interpret |= p.row.task.state == "received";
                Recorded::New { inbound_id: p.row.inbound_id, task_id: p.row.task_id }
            } else {
                Recorded::Duplicate
            };
            // The caller may have given up waiting; the row is recorded all the same.
            let _ = p.done.send(Ok(outcome));
        }
        if interpret {
            self.wake.notify_one();
        }
    }

    async fn insert(&self, batch: &[Pending]) -> Result<HashSet<Uuid>, sqlx::Error> {
        let rows = batch.iter().map(|p| &p.row);
        let ids: Vec<Uuid> = rows.clone().map(|r| r.inbound_id).collect();
        let installs: Vec<Uuid> = rows.clone().map(|r| r.install_id).collect();
        let platforms: Vec<&str> = rows.clone().map(|r| r.platform).collect();
        let deliveries: Vec<&str> = rows.clone().map(|r| r.delivery_id.as_str()).collect();
        let kinds: Vec<&str> = rows.clone().map(|r| r.kind).collect();
        let payloads: Vec<&serde_json::Value> = rows.clone().map(|r| &r.payload).collect();
        let retry_nums: Vec<Option<i32>> = rows.clone().map(|r| r.retry.num).collect();
        let retry_reasons: Vec<Option<&str>> = rows.clone().map(|r| r.retry.reason.as_deref()).collect();
        let channels: Vec<&str> = rows.clone().map(|r| r.channel.as_str()).collect();
        let threads: Vec<&str> = rows.clone().map(|r| r.thread.as_str()).collect();
        let thread_refs: Vec<&serde_json::Value> = rows.clone().map(|r| &r.thread_ref).collect();
        let tasks: Vec<Uuid> = rows.clone().map(|r| r.task_id).collect();
        let requesters: Vec<&str> = rows.clone().map(|r| r.requester.as_str()).collect();
        let sources: Vec<&str> = rows.clone().map(|r| r.source).collect();
        let commands: Vec<&str> = rows.clone().map(|r| r.task.command).collect();
        let texts: Vec<&str> = rows.clone().map(|r| r.task.text.as_str()).collect();
        let args: Vec<&serde_json::Value> = rows.clone().map(|r| &r.task.args).collect();
        let states: Vec<&str> = rows.clone().map(|r| r.task.state).collect();
        let replies: Vec<Option<&str>> = rows.clone().map(|r| r.task.reply.as_deref()).collect();
        let conversations: Vec<Uuid> = rows.clone().map(|r| r.conversation_id).collect();
        // A zero window turns body-hash deduplication off.
        let replay = !self.settings.replay_window.is_zero();
        let replay_keys: Vec<Option<&str>> = rows.map(|r| r.replay_key.as_deref().filter(|_| replay)).collect();
        let created: Vec<Uuid> = sqlx::query_scalar(WRITE)
            .bind(&ids)
            .bind(&installs)
            .bind(&platforms)
            .bind(&deliveries)
            .bind(&kinds)
            .bind(&payloads)
            .bind(&retry_nums)
            .bind(&retry_reasons)
            .bind(&channels)
            .bind(&threads)
            .bind(&thread_refs)
            .bind(&tasks)
            .bind(&requesters)
            .bind(&sources)
            .bind(&commands)
            .bind(&texts)
            .bind(&args)
            .bind(&states)
            .bind(&replies)
            .bind(&conversations)
            .bind(&replay_keys)
            .bind(self.settings.replay_window.as_secs_f64())
            .fetch_all(&self.pool)
            .await?;
        Ok(created.into_iter().collect())
    }
}

fn fail(batch: Vec<Pending>, e: &sqlx::Error) {
    tracing::error!(error = %e, batch.size = batch.len(), "recording inbound requests failed");
    for p in batch {
        let _ = p.done.send(Err(InboundError::Store(e.to_string())));
    }
}

/// Deadlock or serialization failure: the same batch can succeed on a retry.
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// The store is unreachable: writing rows one by one would only fail more slowly.
fn is_connection(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_))
}
