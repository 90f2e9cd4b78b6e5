//! The stream worker: claims open streams and drives each one step per `cadence` until it is closed.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use cynode_adapters::{PlatformError, Reply};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::watch;

use super::body::Body;
use super::budget::{OutboundBudget, Take};
use super::sink::{Op, Owned, Sinks, Target, ThreadSink, Via};
use super::store::{self, Claimed, Progress};
use super::view::{self, View};
use super::{StreamSettings, text};

#[path = "draft.rs"]
mod draft;
#[path = "streamed.rs"]
mod streamed;

/// Output chunks read per query.
const CHUNK_BATCH: i64 = 1_000;
/// The longest a send waits for its reserved turn in the shared budget.
const MAX_RESERVE: Duration = Duration::from_secs(2);

/// Drives streams. One per process; every replica runs one.
#[derive(Debug)]
pub struct StreamWorker {
    pool: PgPool,
    sinks: Sinks,
    budget: OutboundBudget,
    settings: StreamSettings,
    running: AtomicUsize,
}

/// What a stream does next.
enum Next {
    /// Step again after this long.
    Again(Duration),
    /// The stream is closed or another replica holds it.
    Stop,
}

/// What a stream keeps between steps on this replica (rebuilt from the store after a takeover).
#[derive(Default)]
struct Local {
    body: Option<Body>,
    offset: i64,
    /// A budget token reserved by the last step for this operation: the step waited for its turn by sleeping
    /// until it is due, and this step (rendering the latest output) spends it.
    prepaid: Option<Op>,
    /// The draft shown, if any.
    drafts: draft::Drafts,
    /// Until when this replica surely holds the claim (its last renewal plus the claim's lifetime, counted from
    /// before the renewal was sent). Past it, nothing is sent before the claim is renewed: a replica that was
    /// frozen (SIGSTOP, a long GC-like pause, a partition) never sends what it was about to send when it froze
    /// once another replica may have taken the stream over.
    claim_until: Option<Instant>,
    /// Since when looking up an interrupted post has failed with transient errors (see [`StreamSettings::lookup_patience`]).
    lookup_failing: Option<Instant>,
}

/// Starts the worker; it stops (releasing its streams to other replicas) when `shutdown` fires.
pub fn spawn_stream_worker(
    pool: PgPool,
    sinks: Sinks,
    settings: StreamSettings,
    shutdown: watch::Receiver<bool>,
) -> Arc<StreamWorker> {
    let budget = OutboundBudget::new(pool.clone());
    let worker = Arc::new(StreamWorker { pool, sinks, budget, settings, running: AtomicUsize::new(0) });
    tracing::info!(platforms = ?worker.sinks.platforms(), "stream worker started");
    tokio::spawn(worker.clone().claim_loop(shutdown));
    worker
}

impl StreamWorker {
    /// Streams this replica drives now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    async fn claim_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let batch = self.settings.claim_batch.max(1);
            let free = self.settings.capacity.saturating_sub(self.running()).min(batch);
            // A full batch means more may be waiting: look again sooner (the other replicas' looks interleave).
            let mut full = false;
            if free > 0 {
                let asked = Instant::now();
                match store::claim(&self.pool, i64::try_from(free).unwrap_or(1), self.settings.claim_ttl).await {
                    Ok(claimed) => {
                        full = claimed.len() == batch;
                        for c in claimed {
                            self.running.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(self.clone().drive(c, asked, shutdown.clone()));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming streams failed; retrying"),
                }
            }
            let pause = if full { self.settings.poll / 4 } else { self.settings.poll };
            tokio::select! {
                () = tokio::time::sleep(pause) => {},
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn drive(self: Arc<Self>, c: Claimed, asked: Instant, mut shutdown: watch::Receiver<bool>) {
        let mut local = Local { claim_until: Some(asked + self.settings.claim_ttl), ..Local::default() };
        loop {
            let delay = match self.step(&c, &mut local).await {
                Ok(Next::Again(d)) => d,
                Ok(Next::Stop) => break,
                Err(e) => {
                    tracing::warn!(task.id = %c.task_id, error = %e, "stream step failed; retrying");
                    self.settings.cadence
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay.max(Duration::from_millis(20))) => {},
                _ = shutdown.changed() => {
                    let _ = store::release(&self.pool, &c).await;
                    break;
                }
            }
        }
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    async fn step(&self, c: &Claimed, local: &mut Local) -> Result<Next, sqlx::Error> {
        let started = Instant::now();
        let Some(mut p) = store::progress(&self.pool, c).await? else {
            tracing::info!(task.id = %c.task_id, "the stream was taken over by another replica; this one stops");
            return Ok(Next::Stop);
        };
        let Some((snap, target, created)) = store::snapshot(&self.pool, c.task_id).await? else {
            p.closed = true;
            store::save(&self.pool, c, &p, "", self.settings.claim_ttl).await?;
            return Ok(Next::Stop);
        };
        let age = Utc::now().signed_duration_since(created).to_std().unwrap_or_default();
        if age > self.settings.max_age && p.messages.is_empty() {
            p.closed = true;
            store::save(&self.pool, c, &p, "", self.settings.claim_ttl).await?;
            return Ok(Next::Stop);
        }
        let Some(sink) = self.sinks.get(target.platform()).cloned() else {
            store::save(&self.pool, c, &p, "", self.settings.claim_ttl).await?;
            return Ok(Next::Again(self.settings.cadence * 5));
        };
        if snap.job.is_some() {
            self.read_output(c, local).await?;
        }
        p.next_offset = local.offset;
        let budget = sink.page_budget();
        let header = sink.streams(&target);
        let attempt = local.body.as_ref().map_or(0, |b| b.attempt);
        let max = self.settings.max_messages.max(1);
        let shown = view::render_with(&snap, local.body.as_ref(), &budget, max, header, p.breaks.of(attempt));
        let prepaid = local.prepaid.take();
        let drafts = std::mem::take(&mut local.drafts);
        let mut run = Run {
            worker: self,
            c,
            sink: sink.as_ref(),
            target: &target,
            p,
            prepaid,
            reserved: None,
            drafts,
            started,
            sent_at: None,
            claim_until: local.claim_until,
            lookup_failing: local.lookup_failing,
        };
        let next = match shown {
            View::Private(None) => Next::Again(self.settings.poll),
            View::Private(Some(text)) => run.private(&text).await?,
            View::Thread { slots, done, shows } => {
                // Only a person can move a job that waits for approval on: once its card shows, park the stream.
                let waiting = snap.job.as_ref().is_some_and(|j| j.state == "awaiting_approval")
                    && snap.approval.as_ref().is_some_and(|a| a.state == "pending");
                run.thread(&slots, done, &shows, attempt, waiting).await?
            }
        };
        local.prepaid = run.reserved;
        local.drafts = run.drafts;
        local.claim_until = run.claim_until;
        local.lookup_failing = run.lookup_failing;
        Ok(next)
    }

    async fn read_output(&self, c: &Claimed, local: &mut Local) -> Result<(), sqlx::Error> {
        loop {
            let chunks = store::output(&self.pool, c.task_id, local.offset, CHUNK_BATCH).await?;
            let n = chunks.len();
            for chunk in chunks {
                local.offset = chunk.seq;
                let body = local.body.get_or_insert_with(|| Body::new(chunk.attempt));
                if chunk.attempt > body.attempt {
                    *body = Body::new(chunk.attempt);
                } else if chunk.attempt < body.attempt {
                    continue;
                }
                body.push(&String::from_utf8_lossy(&chunk.data));
            }
            if i64::try_from(n).unwrap_or(0) < CHUNK_BATCH {
                return Ok(());
            }
        }
    }
}

/// One step of one stream.
struct Run<'a> {
    worker: &'a StreamWorker,
    c: &'a Claimed,
    sink: &'a dyn ThreadSink,
    target: &'a Target,
    p: Progress,
    /// A token reserved by the previous step (spent by the first send of that kind).
    prepaid: Option<Op>,
    /// A token this step reserved (for the next step).
    reserved: Option<Op>,
    /// The stream's draft (kept between steps on this replica).
    drafts: draft::Drafts,
    /// When the step began.
    started: Instant,
    /// When the step's last call was let through by the budget: the next step is due a cadence after it (after
    /// the start when nothing was sent), so two updates are at least a cadence apart however long a step takes.
    sent_at: Option<Instant>,
    /// Until when the claim surely holds (see [`Local::claim_until`]).
    claim_until: Option<Instant>,
    /// See [`Local::lookup_failing`].
    lookup_failing: Option<Instant>,
}

/// How a send ended, for the step.
enum Sent {
    Done,
    /// Done, and the stream's page record already says what the message shows (streamed messages).
    Kept,
    Wait(Duration),
    Refused(&'static str),
}

impl Run<'_> {
    async fn save(&mut self, rendered: &str) -> Result<bool, sqlx::Error> {
        let asked = Instant::now();
        let ttl = self.worker.settings.claim_ttl;
        let held = store::save(&self.worker.pool, self.c, &self.p, rendered, ttl).await?;
        self.claim_until = held.then_some(asked + ttl);
        if !held {
            tracing::info!(task.id = %self.c.task_id, "the stream was taken over by another replica; this one stops");
        }
        Ok(held)
    }

    /// Whether the claim still holds for a send: surely while it is within its lifetime, else only once renewed
    /// (a replica that was frozen finds it taken over, and sends nothing).
    async fn holds(&mut self) -> Result<bool, sqlx::Error> {
        if self.claim_until.is_some_and(|until| Instant::now() < until) {
            return Ok(true);
        }
        self.save("").await
    }

    async fn private(&mut self, text: &str) -> Result<Next, sqlx::Error> {
        if let Some(wait) = self.take(Op::Private).await? {
            return Ok(Next::Again(wait));
        }
        let result = self.sink.private(self.target, text).await;
        if let Sent::Wait(wait) = self.outcome(Op::Private, result.map(|()| None)).await? {
            return Ok(Next::Again(wait));
        }
        self.p.closed = true;
        self.save("").await?;
        Ok(Next::Stop)
    }

    /// Brings the thread's messages up to `slots`; `shows` and `attempt` say which output each slot shows.
    async fn thread(
        &mut self,
        slots: &[Reply],
        done: bool,
        shows: &[Option<Range<usize>>],
        attempt: i32,
        waiting: bool,
    ) -> Result<Next, sqlx::Error> {
        let cadence = self.worker.settings.cadence;
        if let Some(i) = self.p.pending_post.take()
            && usize::try_from(i).is_ok_and(|i| i == self.p.messages.len())
            && let Some(wait) = self.interrupted(self.p.messages.len()).await?
        {
            return if self.save(&rendered(slots)).await? { Ok(Next::Again(wait)) } else { Ok(Next::Stop) };
        }
        // Once the job ended, the output goes first and the status after it: an existing message with the final
        // footer (it carries the last output) changes after the other output messages, and an existing message
        // whose only change is its status line (a full first page still showing the output it showed) changes
        // last, so the status never says "Succeeded" while output is still missing. With drafts, the messages not
        // posted yet (the final output and status) go first: they share the chat's budget with the edit of the
        // first message's status line and must not wait behind it.
        let owned = self.p.messages.len();
        let drafting = draft::drafting(&self.worker.settings, self.sink, self.target, &self.drafts);
        let late = |i: &usize| done && *i < owned && slots[*i].footer.is_some();
        let breaks = self.p.breaks.of(attempt);
        let same_output = |i: &usize| shows.get(*i).cloned().flatten().is_some_and(|r| breaks.contains(&r.end));
        let status = |i: &usize| {
            done && *i < owned && slots[*i].footer.is_none() && slots[*i].status.is_some() && same_output(i)
        };
        let fresh = |i: &usize| done && drafting && *i >= owned;
        let order: Vec<usize> = (0..slots.len())
            .filter(fresh)
            .chain((0..slots.len()).filter(|i| !late(i) && !fresh(i) && !status(i)))
            .chain((0..slots.len()).filter(late))
            .chain((0..slots.len()).filter(|i| status(i) && !fresh(i)))
            .collect();
        self.drafts.live = false;
        for i in order {
            let last = i + 1 == slots.len();
            // A message with the final status that must be posted before the output after it (a job that ended
            // before its stream's header was posted) is posted as the first reply ("working on it"); the status
            // follows in an edit once the output is there.
            let held = (done && !last && slots[i].footer.is_some() && self.p.messages.len() <= i)
                .then(|| Reply::new(text::WORKING));
            let slot = held.as_ref().unwrap_or(&slots[i]);
            let fp = fingerprint(slot);
            let sent = match self.p.messages.get(i).cloned() {
                Some(m) if m.via == Via::Stream => self.streamed(i, &m, slot, done || !last).await?,
                Some(_) if self.p.pages.get(i) == Some(&fp) => continue,
                // A post whose fate is unknown: it may be in the thread. It is never repeated; once the slot must
                // show something else (the final status, the answer) that is posted anew, so the thread always
                // ends with what the task came to. A post of unknown content (an older record) stays lost.
                Some(m) if m.via == Via::Lost && self.p.pages.get(i).is_none_or(String::is_empty) => continue,
                Some(m) if m.via == Via::Lost => self.repost(i, slot).await?,
                Some(m) => self.edit(&m, slot).await?,
                None if last && !done && self.draftable(slot) => self.draft(i, slot).await?,
                None if last && !done && streamed::streamable(self.sink, self.target, i, slot) => {
                    self.start(i, slot).await?
                }
                None => {
                    let sent = self.post(i, slot).await?;
                    // A full page waiting for its turn: its draft goes on showing it with the output after it.
                    if let Sent::Wait(_) = sent
                        && !done
                        && i + 2 == slots.len()
                        && self.draftable(&slots[i + 1])
                        && let Some(preview) = view::preview(slot, &slots[i + 1], &self.sink.page_budget())
                    {
                        self.preview(i, &preview).await?;
                    }
                    sent
                }
            };
            if matches!(sent, Sent::Kept | Sent::Done)
                && let Some(Some(range)) = shows.get(i)
            {
                self.p.breaks.shown(attempt, range);
            }
            match sent {
                Sent::Kept => {}
                Sent::Done => set(&mut self.p.pages, i, fp),
                Sent::Wait(wait) => {
                    return if self.save(&rendered(slots)).await? { Ok(Next::Again(wait)) } else { Ok(Next::Stop) };
                }
                Sent::Refused(reason) => {
                    let line = Reply::new(text::platform_error(reason));
                    let retry = match self.p.messages.get(i).cloned() {
                        Some(m) => self.edit(&m, &line).await?,
                        None => self.post(i, &line).await?,
                    };
                    if self.p.messages.len() <= i {
                        self.p.messages.push(Owned { channel: String::new(), id: String::new(), via: Via::Lost });
                    }
                    if let Sent::Wait(wait) = retry {
                        // Saved, so the refused post is not mistaken for an interrupted one.
                        return if self.save(&rendered(slots)).await? { Ok(Next::Again(wait)) } else { Ok(Next::Stop) };
                    }
                    set(&mut self.p.pages, i, fp);
                }
            }
        }
        self.p.closed = done;
        if !self.save(&rendered(slots)).await? || done {
            return Ok(Next::Stop);
        }
        // Everything shows what it must and only a person can change it: park (a live stream or draft would
        // expire, so those go on).
        let live = self.drafts.live || self.p.messages.iter().any(|m| m.via == Via::Stream);
        if waiting && !live && store::park(&self.worker.pool, self.c, &self.p, self.worker.settings.park_max).await? {
            tracing::debug!(task.id = %self.c.task_id, "stream parked until the approval is decided");
            return Ok(Next::Stop);
        }
        let faster = if self.p.messages.iter().any(|m| m.via == Via::Stream) {
            self.sink.stream_cadence()
        } else if self.drafts.live {
            self.sink.draft_cadence()
        } else {
            None
        };
        let cadence = faster.map_or(cadence, |c| c.min(cadence));
        Ok(Next::Again(cadence.saturating_sub(self.sent_at.unwrap_or(self.started).elapsed())))
    }

    /// Settles post `i`, interrupted with its fate unknown (the replica that sent it died, or the answer was lost).
    /// Where the sink can look it up (Slack: by the metadata marker every thread post carries) and it is found,
    /// the stream goes on in that message; where it is surely not there, the slot is posted by this step. Where
    /// the platform cannot tell (no lookup, a missing scope, a stream start), it is marked lost: never repeated,
    /// and posted anew only once the slot must show something else, so the thread still ends with the final
    /// status. `Some(wait)`: ask again after `wait` (budget, a transient error).
    async fn interrupted(&mut self, i: usize) -> Result<Option<Duration>, sqlx::Error> {
        let is_post = self.p.pages.get(i).is_some_and(|fp| !fp.is_empty() && !streamed::is_mark(fp));
        let found = if is_post {
            if let Some(wait) = self.take(Op::Find).await? {
                self.p.pending_post = i32::try_from(i).ok();
                return Ok(Some(wait));
            }
            self.sink.find(self.target, i).await
        } else {
            Err(PlatformError::InvalidRequest("an interrupted stream start".into()))
        };
        let task = self.c.task_id;
        if found.is_ok() {
            self.lookup_failing = None;
        }
        match found {
            Ok(Some(message)) => {
                tracing::info!(task.id = %task, index = i, "an interrupted post is in the thread; continuing in it");
                self.p.messages.push(message);
            }
            Ok(None) => tracing::info!(task.id = %task, index = i, "an interrupted post never arrived; posting it"),
            Err(e @ (PlatformError::Transient(_) | PlatformError::RateLimited { .. }))
                if self.lookup_failing.get_or_insert_with(Instant::now).elapsed()
                    < self.worker.settings.lookup_patience =>
            {
                tracing::info!(task.id = %task, index = i, reason = e.reason(), "looking up an interrupted post failed; retrying");
                if let PlatformError::RateLimited { retry_after, .. } = e {
                    let buckets = self.sink.buckets(self.target, Op::Find);
                    self.worker.budget.block(self.target.install_id, &buckets, retry_after).await?;
                }
                self.p.pending_post = i32::try_from(i).ok();
                return Ok(Some(self.worker.settings.cadence));
            }
            Err(e) => {
                self.lookup_failing = None;
                tracing::warn!(task.id = %task, index = i, reason = e.reason(), "a post was interrupted and cannot be looked up; not repeating it");
                self.p.messages.push(Owned { channel: String::new(), id: String::new(), via: Via::Lost });
                // `pages[i]` keeps what the interrupted post showed (recorded with it), so the slot is posted anew
                // only when what it must show changes.
                if self.p.pages.len() < self.p.messages.len() {
                    self.p.pages.push(String::new());
                }
            }
        }
        Ok(None)
    }

    async fn post(&mut self, i: usize, reply: &Reply) -> Result<Sent, sqlx::Error> {
        if let Some(wait) = self.take(Op::Post).await? {
            return Ok(Sent::Wait(wait));
        }
        // Record before send: a crash from here until the id is saved never leads to a second post of this
        // content (`pages[i]` says what was in flight).
        self.p.pending_post = i32::try_from(i).ok();
        set(&mut self.p.pages, i, fingerprint(reply));
        if !self.save("").await? {
            return Ok(Sent::Wait(Duration::from_secs(3600)));
        }
        let result = self.sink.post(self.target, i, reply).await;
        self.p.pending_post = None;
        match result {
            Ok(posted) => {
                self.p.messages.push(posted.message);
                self.outcome(Op::Post, Ok(posted.rate_limit)).await
            }
            Err(PlatformError::Transient(_)) => {
                // The post may have landed: it stays pending (`pages[i]` keeps what it showed), and the next step
                // settles it like a post interrupted by a crash.
                self.p.pending_post = i32::try_from(i).ok();
                Ok(Sent::Wait(self.worker.settings.cadence))
            }
            Err(e) => self.outcome(Op::Post, Err(e)).await,
        }
    }

    /// Posts slot `i` anew in place of a post whose fate is unknown, once the slot must show something else.
    /// Recorded before it is sent, like every post: a crash during it never leads to a third message.
    async fn repost(&mut self, i: usize, reply: &Reply) -> Result<Sent, sqlx::Error> {
        if let Some(wait) = self.take(Op::Post).await? {
            return Ok(Sent::Wait(wait));
        }
        set(&mut self.p.pages, i, fingerprint(reply));
        if !self.save("").await? {
            return Ok(Sent::Wait(Duration::from_secs(3600)));
        }
        tracing::info!(task.id = %self.c.task_id, index = i, "posting anew what an interrupted post should show");
        match self.sink.post(self.target, i, reply).await {
            Ok(posted) => {
                self.p.messages[i] = posted.message;
                self.outcome(Op::Post, Ok(posted.rate_limit)).await
            }
            Err(PlatformError::Transient(_)) => Ok(Sent::Wait(self.worker.settings.cadence)),
            Err(e) => self.outcome(Op::Post, Err(e)).await,
        }
    }

    async fn edit(&mut self, m: &Owned, reply: &Reply) -> Result<Sent, sqlx::Error> {
        let op = Op::Edit(m.via);
        if let Some(wait) = self.take(op).await? {
            return Ok(Sent::Wait(wait));
        }
        let result = self.sink.edit(self.target, m, reply).await;
        self.outcome(op, result.map(|p| p.rate_limit)).await
    }

    /// Takes the budget of `op`: `None` to send now, `Some(wait)` to step again after `wait`. A short reservation
    /// is kept for the next step, which then sends what is current by then.
    async fn take(&mut self, op: Op) -> Result<Option<Duration>, sqlx::Error> {
        if !self.holds().await? {
            return Ok(Some(Duration::from_secs(3600)));
        }
        if self.prepaid.take_if(|p| *p == op).is_some() {
            self.sent_at = Some(Instant::now());
            return Ok(None);
        }
        let buckets = self.sink.buckets(self.target, op);
        // A reservation keeps the stream's claim renewed in between, so it stays well inside the claim.
        let max_reserve = (self.worker.settings.claim_ttl / 3).min(MAX_RESERVE);
        match self.worker.budget.take(self.target.install_id, &buckets, max_reserve).await? {
            Take::Now => {
                self.sent_at = Some(Instant::now());
                Ok(None)
            }
            Take::Reserved(wait) => {
                self.reserved = Some(op);
                Ok(Some(wait))
            }
            Take::Later(wait) => Ok(Some(wait)),
        }
    }

    async fn outcome(
        &self,
        op: Op,
        result: Result<Option<cynode_adapters::RateLimit>, PlatformError>,
    ) -> Result<Sent, sqlx::Error> {
        let install = self.target.install_id;
        match result {
            Ok(limit) => {
                let wait = limit.map(|l| l.wait_before_next()).unwrap_or_default();
                if !wait.is_zero() {
                    self.worker.budget.block(install, &self.sink.reported(self.target, op), wait).await?;
                }
                Ok(Sent::Done)
            }
            Err(PlatformError::RateLimited { retry_after, .. }) => {
                tracing::warn!(task.id = %self.c.task_id, retry_after_ms = retry_after.as_millis(), "rate limited");
                // Which limit a 429 is about is not always said (Telegram): every bucket of the call waits.
                self.worker.budget.block(install, &self.sink.buckets(self.target, op), retry_after).await?;
                Ok(Sent::Wait(retry_after))
            }
            Err(PlatformError::Transient(_)) => Ok(Sent::Wait(self.worker.settings.cadence * 2)),
            Err(PlatformError::NotModified | PlatformError::NotFound | PlatformError::Expired) => Ok(Sent::Done),
            Err(e) => {
                tracing::warn!(task.id = %self.c.task_id, reason = e.reason(), "platform refused a stream message");
                Ok(Sent::Refused(e.reason()))
            }
        }
    }
}

fn set(pages: &mut Vec<String>, i: usize, fp: String) {
    if pages.len() <= i {
        pages.resize(i + 1, String::new());
    }
    pages[i] = fp;
}

/// A short, stable fingerprint of what a message shows.
fn fingerprint(reply: &Reply) -> String {
    let json = serde_json::to_vec(reply).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..12])
}

/// What the stream shows, as one text (for the record).
fn rendered(slots: &[Reply]) -> String {
    let parts: Vec<String> = slots
        .iter()
        .map(|r| {
            [r.status.as_deref(), Some(r.body.as_str()), r.footer.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    parts.join("\n\u{2029}\n")
}
