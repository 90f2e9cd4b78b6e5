//! `GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events.
//!
//! Each event's `id` is its number in the task's durable event log (`task_events`, see
//! [`cynode_orchestrator::views::events`]); numbers are gapless and become visible in order, so a client that
//! reconnects with `Last-Event-ID: n` receives exactly the events after `n` — from any replica, after restarts.
//! The log is read again as soon as a writer in this process announces a change to the task or one of its jobs
//! (a claim, output, a finish: [`cynode_orchestrator::views::live`]), and polled (`dispatch.event_poll_ms`,
//! 200 ms by default) as the fallback that needs nothing shared between replicas (a node connected to another
//! replica). When the task is final and
//! every event has been sent, an `end` event (without an id) closes the stream. Comments keep idle connections
//! alive.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::views::live::Follower;
use cynode_orchestrator::views::{self, FINAL_TASK_STATES};
use futures_util::Stream;
use sqlx::PgPool;
use uuid::Uuid;

use super::auth::Caller;
use super::model::{EndEvent, not_found, parse_id};
use crate::error::ApiError;
use crate::server::AppState;

/// Events read per query.
const BATCH: i64 = 256;

/// Streams a task's events; 404 outside the token's install.
pub(super) async fn stream(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Role::Viewer)?;
    let task = parse_id("task", &id)?;
    let view = views::task(&state.pool, caller.scope(), task).await?.ok_or_else(|| not_found("task", &id))?;
    let mut follower = state.dispatcher.events().follower();
    follower.follow(task);
    for job in &view.jobs {
        follower.follow(job.id);
    }
    let after = match headers.get("last-event-id").map(|v| v.to_str().map(str::trim)) {
        None => 0,
        Some(Ok(v)) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", "`Last-Event-ID` must be an event id we sent")
        })?,
        Some(Err(_)) => return Err(ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", "bad Last-Event-ID")),
    };
    let cursor = Cursor {
        pool: state.pool.clone(),
        task,
        after,
        pending: VecDeque::new(),
        done: false,
        follower,
        poll: state.dispatcher.settings().event_poll_fallback,
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        let event = c.next().await?;
        Some((Ok(event), c))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")))
}

struct Cursor {
    pool: PgPool,
    task: Uuid,
    after: i64,
    pending: VecDeque<Event>,
    done: bool,
    /// Wakes the cursor when a writer here announces a change to the task or one of its jobs.
    follower: Follower,
    /// The fallback poll interval.
    poll: Duration,
}

impl Cursor {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::select! {
                        () = self.follower.wait() => {}
                        () = tokio::time::sleep(self.poll) => {}
                    }
                }
                Err(e) => {
                    // The client reconnects with Last-Event-ID and loses nothing.
                    tracing::warn!(task.id = %self.task, error = %e, "reading task events failed; closing the stream");
                    return None;
                }
            }
        }
    }

    /// Queues what is new; `false` when there was nothing.
    async fn fill(&mut self) -> Result<bool, sqlx::Error> {
        // The state is read before the events: if it is final, its own event is already in the log.
        let Some((state, reply)) = views::events::task_state(&self.pool, self.task).await? else {
            self.done = true;
            return Ok(true);
        };
        let batch = views::events::after(&self.pool, self.task, self.after, BATCH).await?;
        for ev in &batch {
            self.after = ev.seq();
            if let views::events::TaskEvent::Job { job_id, .. } = ev {
                // A job created after the stream started (a retry's job, an agent's next step).
                self.follower.follow(*job_id);
            }
            let sse = Event::default().id(ev.seq().to_string()).event(ev.name());
            self.pending.push_back(sse.json_data(ev).unwrap_or_else(|_| Event::default().comment("unencodable")));
        }
        if !batch.is_empty() {
            return Ok(true);
        }
        if FINAL_TASK_STATES.contains(&state.as_str()) {
            let end = Event::default().event("end").json_data(EndEvent { state, reply });
            self.pending.push_back(end.unwrap_or_else(|_| Event::default().event("end")));
            self.done = true;
            return Ok(true);
        }
        Ok(false)
    }
}
