//! Event types and [`emit`], the transactional write into the outbox.

use std::fmt;
use std::str::FromStr;

use sqlx::PgConnection;
use uuid::Uuid;

/// What happened. The dotted names are a stable contract with receivers (the `type` of every delivery and the
/// values of a subscription's `event_types`): never rename one, add new ones instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A task was recorded (from chat, a webhook or the API).
    TaskCreated,
    /// A task reached a final state (succeeded, failed, cancelled, answered).
    TaskFinished,
    /// A job was queued for a node (after approval when one was needed).
    JobQueued,
    /// A node started a job (every attempt).
    JobStarted,
    /// A chunk of job output. High volume: **opt-in**, sent only to subscriptions that name it explicitly.
    JobOutput,
    /// A job reached a final state.
    JobFinished,
    /// A job waits for approval.
    ApprovalRequested,
    /// An approval was granted, denied or expired.
    ApprovalResolved,
    /// A node agent registered for the first time, or again with other capabilities (not on token renewals).
    NodeRegistered,
    /// A test message sent by [`crate::outbox::Subscriptions::send_test`]; cannot be subscribed to.
    Ping,
}

impl EventType {
    /// Every event type a subscription may name.
    pub const SUBSCRIBABLE: [Self; 9] = [
        Self::TaskCreated,
        Self::TaskFinished,
        Self::JobQueued,
        Self::JobStarted,
        Self::JobOutput,
        Self::JobFinished,
        Self::ApprovalRequested,
        Self::ApprovalResolved,
        Self::NodeRegistered,
    ];

    /// The stable dotted name, e.g. `job.finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskCreated => "task.created",
            Self::TaskFinished => "task.finished",
            Self::JobQueued => "job.queued",
            Self::JobStarted => "job.started",
            Self::JobOutput => "job.output",
            Self::JobFinished => "job.finished",
            Self::ApprovalRequested => "approval.requested",
            Self::ApprovalResolved => "approval.resolved",
            Self::NodeRegistered => "node.registered",
            Self::Ping => "ping",
        }
    }

    /// Opt-in events are not included when a subscription lists no event types ("all").
    pub fn is_opt_in(self) -> bool {
        matches!(self, Self::JobOutput | Self::Ping)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown event name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SUBSCRIBABLE
            .into_iter()
            .chain([Self::Ping])
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One statement: the database's `outbox_emit` (migration `…_job_started_output_events`), shared with the triggers
/// that raise `job.started` and `job.output`. It writes a row per enabled subscription whose `event_types` name the
/// event (or are empty, unless the event is opt-in) and whose `filter` is contained in the payload (`payload @>
/// filter`: with the validated filter shape — an object of scalars — that is equality on those top-level fields).
/// A subscription owned by an install gets only payloads whose top-level `install_id` is that install (fail
/// closed: none without one).
const EMIT: &str = "SELECT outbox_emit($1, $2, $3, $4)";

/// Writes `event` about `subject` (the task, job, approval or node id) to the outbox, in the caller's
/// transaction: one delivery per enabled subscription that wants it. `payload` becomes the `data` of the
/// delivered message; keep it small (ids, states, short text) and put the fields subscriptions filter on
/// (`install_id`, `template`, …) at its top level.
///
/// Returns how many deliveries were created. When it is non-zero, call [`crate::outbox::OutboxWaker::announce`]
/// after the transaction commits. With no subscriptions this is one cheap statement that writes nothing.
///
/// # Errors
/// Any database error (the caller's transaction should then be rolled back).
pub async fn emit(
    conn: &mut PgConnection,
    event: EventType,
    subject: Uuid,
    payload: &serde_json::Value,
) -> Result<u64, sqlx::Error> {
    let written: i64 = sqlx::query_scalar(EMIT)
        .bind(event.as_str())
        .bind(subject)
        .bind(payload)
        .bind(event.is_opt_in())
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(written).unwrap_or(0))
}

/// [`EMIT`] for many events at once: one row per (event, matching subscription).
/// `outbox_emit` for each event, in one statement: the function is the one definition of which subscriptions
/// get an event (tenant scoping included).
const EMIT_MANY: &str = "
SELECT coalesce(sum(outbox_emit(e.event_type, e.subject, e.payload, e.opt_in)), 0)::bigint
FROM unnest($1::text[], $2::uuid[], $3::jsonb[], $4::bool[]) AS e(event_type, subject, payload, opt_in)";

/// [`emit`] for several events in one statement (for writers that settle many things in one transaction):
/// the same rows. Returns how many deliveries were created.
///
/// # Errors
/// Any database error (the caller's transaction should then be rolled back).
pub async fn emit_many(
    conn: &mut PgConnection,
    events: &[(EventType, Uuid, serde_json::Value)],
) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let types: Vec<&str> = events.iter().map(|(e, _, _)| e.as_str()).collect();
    let subjects: Vec<Uuid> = events.iter().map(|(_, s, _)| *s).collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|(_, _, p)| p).collect();
    let opt_in: Vec<bool> = events.iter().map(|(e, _, _)| e.is_opt_in()).collect();
    let written: i64 = sqlx::query_scalar(EMIT_MANY)
        .bind(&types)
        .bind(&subjects)
        .bind(&payloads)
        .bind(&opt_in)
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(written).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in EventType::SUBSCRIBABLE.into_iter().chain([EventType::Ping]) {
            assert!(seen.insert(e.as_str()), "duplicate {e}");
            assert_eq!(e.as_str().parse::<EventType>(), Ok(e));
            assert_eq!(serde_json::to_value(e).expect("json"), serde_json::json!(e.as_str()));
        }
        assert!("job.exploded".parse::<EventType>().is_err());
        assert!(EventType::JobOutput.is_opt_in() && !EventType::JobFinished.is_opt_in());
    }
}
