//! Stream records in the store: claims, snapshots, output, and fenced writes.

use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_adapters::{Inbound, ThreadRef};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::sink::{Owned, Target};
use super::view::{ApprovalView, JobView, Snapshot};

/// A claimed stream.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub(crate) id: Uuid,
    pub(crate) task_id: Uuid,
    pub(crate) claim_token: Uuid,
}

/// Where the output pages of one attempt ended when they were last shown (byte offsets, see
/// [`render_with`](super::view::render_with)).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Breaks {
    attempt: i32,
    at: Vec<usize>,
}

impl Breaks {
    /// The breaks of `attempt`'s output.
    pub(crate) fn of(&self, attempt: i32) -> &[usize] {
        if self.attempt == attempt { &self.at } else { &[] }
    }

    /// Records that a page now shows `range` of `attempt`'s output: its end is a break, and any break inside
    /// it (where it ended when it was shorter) is not one any more.
    pub(crate) fn shown(&mut self, attempt: i32, range: &Range<usize>) {
        if self.attempt != attempt {
            *self = Self { attempt, at: Vec::new() };
        }
        self.at.retain(|b| *b <= range.start || *b > range.end);
        self.at.push(range.end);
        self.at.sort_unstable();
    }
}

/// What a stream has done so far (the durable part).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) messages: Vec<Owned>,
    pub(crate) pages: Vec<String>,
    pub(crate) breaks: Breaks,
    pub(crate) pending_post: Option<i32>,
    pub(crate) next_offset: i64,
    pub(crate) closed: bool,
    /// The stream's wake-up count when the step read it ([`park`] parks only if it is unchanged).
    pub(crate) wake_seq: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Claims up to `limit` open streams nobody holds and nobody parked: those that never posted anything first (a
/// new request's first answer must not wait behind lapsed claims of streams under way), oldest first.
pub(crate) async fn claim(pool: &PgPool, limit: i64, ttl: Duration) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE stream_records s
         SET claim_token = gen_random_uuid(), claimed_until = now() + $2 * interval '1 millisecond'
         FROM (SELECT id FROM stream_records
               WHERE state = 'open' AND (claimed_until IS NULL OR claimed_until < now())
                 AND (parked_until IS NULL OR parked_until <= now())
               ORDER BY message_ids <> '[]'::jsonb, created_at LIMIT $1 FOR UPDATE SKIP LOCKED) picked
         WHERE s.id = picked.id
         RETURNING s.id, s.task_id, s.claim_token",
    )
    .bind(limit)
    .bind(millis(ttl))
    .fetch_all(pool)
    .await
}

#[derive(sqlx::FromRow)]
struct ProgressRow {
    message_ids: Value,
    pages: Value,
    page_breaks: Value,
    pending_post: Option<i32>,
    next_offset: i64,
    wake_seq: i64,
}

/// The stream's progress, if the claim still holds.
pub(crate) async fn progress(pool: &PgPool, c: &Claimed) -> Result<Option<Progress>, sqlx::Error> {
    let row: Option<ProgressRow> = sqlx::query_as(
        "SELECT message_ids, pages, page_breaks, pending_post, next_offset, wake_seq FROM stream_records
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(c.id)
    .bind(c.claim_token)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Progress {
        messages: serde_json::from_value(r.message_ids).unwrap_or_default(),
        pages: serde_json::from_value(r.pages).unwrap_or_default(),
        breaks: serde_json::from_value(r.page_breaks).unwrap_or_default(),
        pending_post: r.pending_post,
        next_offset: r.next_offset,
        closed: false,
        wake_seq: r.wake_seq,
    }))
}

/// Writes progress and renews the claim; `false` when the claim was lost (another replica holds the stream).
pub(crate) async fn save(
    pool: &PgPool,
    c: &Claimed,
    p: &Progress,
    rendered: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE stream_records SET message_ids = $3, pages = $4, pending_post = $5, next_offset = $6,
             rendered = $7, state = CASE WHEN $8 THEN 'closed' ELSE 'open' END,
             claimed_until = CASE WHEN $8 THEN NULL ELSE now() + $9 * interval '1 millisecond' END,
             page_breaks = $10,
             claim_token = CASE WHEN $8 THEN NULL ELSE claim_token END, updated_at = now()
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(c.id)
    .bind(c.claim_token)
    .bind(serde_json::to_value(&p.messages).unwrap_or_default())
    .bind(serde_json::to_value(&p.pages).unwrap_or_default())
    .bind(p.pending_post)
    .bind(p.next_offset)
    .bind(rendered)
    .bind(p.closed)
    .bind(millis(ttl))
    .bind(serde_json::to_value(&p.breaks).unwrap_or_default())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Parks a stream that waits for a person: lets its claim go and keeps every replica from claiming it until a
/// wake-up (see the `stream_parking` migration) or `at_most` from now. Only while the claim holds and no wake-up
/// came since the step read `p.wake_seq`; `false` otherwise (the caller goes on driving it).
pub(crate) async fn park(pool: &PgPool, c: &Claimed, p: &Progress, at_most: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE stream_records SET parked_until = now() + $4 * interval '1 millisecond', claimed_until = NULL,
             claim_token = NULL
         WHERE id = $1 AND claim_token = $2 AND wake_seq = $3 AND state = 'open'",
    )
    .bind(c.id)
    .bind(c.claim_token)
    .bind(p.wake_seq)
    .bind(millis(at_most))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lets another replica take the stream right away (on shutdown).
pub(crate) async fn release(pool: &PgPool, c: &Claimed) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stream_records SET claimed_until = NULL WHERE id = $1 AND claim_token = $2")
        .bind(c.id)
        .bind(c.claim_token)
        .execute(pool)
        .await
        .map(drop)
}

#[derive(sqlx::FromRow)]
struct Row {
    install_id: Uuid,
    install_key: String,
    task_state: String,
    reply: Option<String>,
    requester: String,
    task_created_at: DateTime<Utc>,
    thread_ref: Value,
    payload: Option<Value>,
    inbound_kind: Option<String>,
    received_at: Option<DateTime<Utc>>,
    job_id: Option<Uuid>,
    job_state: Option<String>,
    attempt: Option<i32>,
    max_attempts: Option<i32>,
    result: Option<Value>,
    spec: Option<Value>,
    unschedulable: Option<String>,
    approval_state: Option<String>,
    decided_by: Option<String>,
    decided_by_name: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    approval_reason: Option<String>,
    turn_id: Option<Uuid>,
}

/// A task's snapshot and where to answer; `None` when the task or its thread is unusable.
pub(crate) async fn snapshot(
    pool: &PgPool,
    task: Uuid,
) -> Result<Option<(Snapshot, Target, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT c.install_id, i.external_id AS install_key, t.state AS task_state, t.reply, t.requester, t.created_at AS task_created_at,
                c.thread_ref, e.payload, e.kind AS inbound_kind, e.received_at,
                j.id AS job_id, j.state AS job_state, j.attempt, j.max_attempts, j.result, j.spec, j.unschedulable,
                a.state AS approval_state, a.decided_by, a.decided_by_name, a.decided_at, a.expires_at, a.reason AS approval_reason,
                tu.id AS turn_id
         FROM tasks t JOIN conversations c ON c.id = t.conversation_id JOIN installs i ON i.id = c.install_id
         LEFT JOIN inbound_events e ON e.id = t.inbound_id
         LEFT JOIN LATERAL (SELECT * FROM jobs WHERE task_id = t.id ORDER BY created_at DESC LIMIT 1) j ON true
         LEFT JOIN LATERAL (SELECT * FROM approvals WHERE job_id = j.id ORDER BY created_at DESC LIMIT 1) a ON true
         -- The agent turn this task's message shows, while it runs and nobody asked it to stop (its Stop button).
         LEFT JOIN agent_turns tu ON tu.task_id = t.id AND tu.state = 'running' AND NOT tu.cancel_requested
                                     AND t.command = 'agent' AND t.state = 'running'
         WHERE t.id = $1",
    )
    .bind(task)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let Ok(mut thread) = serde_json::from_value::<ThreadRef>(r.thread_ref) else { return Ok(None) };
    let inbound = r.payload.and_then(|p| serde_json::from_value::<Inbound>(p).ok());
    if let Some(i) = &inbound {
        thread.reply_to = i.thread.reply_to.clone();
    }
    // The key the install is found by (Telegram threads name the bot's @name, the install its webhook path).
    thread.install = r.install_key;
    let job = match (r.job_id, r.job_state) {
        (Some(id), Some(state)) => Some(JobView {
            id,
            state,
            attempt: r.attempt.unwrap_or(0),
            max_attempts: r.max_attempts.unwrap_or(1),
            result: r.result,
            spec: r.spec.and_then(|s| serde_json::from_value(s).ok()),
            notice: r.unschedulable,
        }),
        _ => None,
    };
    let approval = match (r.approval_state, r.expires_at) {
        (Some(state), Some(expires_at)) => Some(ApprovalView {
            state,
            decided_by: r.decided_by,
            decided_by_name: r.decided_by_name,
            decided_at: r.decided_at,
            expires_at,
            reason: r.approval_reason,
        }),
        _ => None,
    };
    let requester_name = inbound.as_ref().and_then(|i| i.actor.name.clone());
    let target = Target {
        task_id: task,
        install_id: r.install_id,
        thread,
        handle: inbound.and_then(|i| i.reply_handle),
        received_at: r.received_at,
        requester: r.requester.clone(),
    };
    let snap = Snapshot {
        task_state: r.task_state,
        reply: r.reply,
        requester: r.requester,
        requester_name: requester_name.filter(|n| !n.trim().is_empty()),
        inbound_kind: r.inbound_kind,
        job,
        approval,
        turn: r.turn_id,
    };
    Ok(Some((snap, target, r.task_created_at)))
}

/// One output chunk in upload (commit) order.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Chunk {
    pub(crate) seq: i64,
    pub(crate) attempt: i32,
    pub(crate) data: Vec<u8>,
}

/// Output chunks of `task` after event `after`, at most `limit`.
pub(crate) async fn output(pool: &PgPool, task: Uuid, after: i64, limit: i64) -> Result<Vec<Chunk>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.seq, e.attempt, c.data FROM task_events e
         JOIN job_output_chunks c
           ON c.job_id = e.job_id AND c.attempt = e.attempt AND c.stream = e.stream AND c.seq = e.chunk_seq
         WHERE e.task_id = $1 AND e.kind = 'output' AND e.seq > $2 ORDER BY e.seq LIMIT $3",
    )
    .bind(task)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
