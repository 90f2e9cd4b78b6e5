//! Removing what agents that never came back left on the engine, whoever they were.
//!
//! A sandbox stops by itself when its agent goes (its watchdog, see `warm::script`), but a stopped container is
//! only removed by the agent that ran it, or by [`cleanup_leftovers`](super::cleanup_leftovers) when an agent
//! with the same owner starts again. An agent that never returns would leave its stopped sandboxes behind for
//! good, so every agent on an engine also sweeps: it removes CyNode sandboxes of *any* owner that stopped (or
//! were created and never started) more than [`SWEEP_AFTER`] ago. A live agent removes its own sandbox within
//! seconds of the job's end (it reads the exit status first), so nothing it still needs is swept.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use chrono::{DateTime, Utc};

use super::LABEL_MANAGED;
use super::engine::{Engine, remove_forced};
use super::error::{ExecError, is_not_found};

/// How long a stopped sandbox is left for the agent that ran it before any agent may remove it.
pub const SWEEP_AFTER: Duration = Duration::from_secs(120);

/// How often a running agent sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Removes CyNode sandboxes of any owner that exited, or were created without being started, more than
/// `older_than` ago. Returns how many were removed.
///
/// # Errors
/// [`ExecError`] when the engine cannot list containers; a container that cannot be inspected or removed is
/// skipped (it is tried again at the next sweep).
pub async fn sweep_stopped(engine: &Engine, older_than: Duration) -> Result<usize, ExecError> {
    let filters = HashMap::from([
        ("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")]),
        ("status".to_owned(), vec!["exited".to_owned(), "created".to_owned(), "dead".to_owned()]),
    ]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let found =
        engine.docker().list_containers(Some(options)).await.map_err(|e| engine.err("list stopped sandboxes", e))?;
    let now = Utc::now();
    let older_than = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let mut removed = 0;
    for summary in found {
        let Some(id) = summary.id else { continue };
        let Ok(details) = engine.docker().inspect_container(&id, None).await else { continue };
        let state = details.state.unwrap_or_default();
        // Still running (it was restarted meanwhile, or the list was stale): not ours to judge.
        if state.running == Some(true) {
            continue;
        }
        let finished = state.finished_at.as_deref().and_then(parse_time);
        let since = match finished {
            Some(at) => at,
            // Never started: judge by its creation time.
            None => match details.created.as_deref().and_then(parse_time) {
                Some(at) => at,
                None => continue,
            },
        };
        if now - since < older_than {
            continue;
        }
        match remove_forced(engine, &id).await {
            Ok(()) => removed += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::debug!(container.id = id, error = %e, "could not sweep a stopped sandbox"),
        }
    }
    if removed > 0 {
        tracing::info!(count = removed, "removed stopped sandboxes left by agents that are gone");
    }
    Ok(removed)
}

/// The engine's RFC 3339 times; its zero time (`0001-01-01T00:00:00Z`, "never") is `None`.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let at = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (at.timestamp() > 0).then_some(at)
}

/// Sweeps now and then every [`SWEEP_EVERY`] in the background, for as long as the runtime lives.
pub fn spawn_sweeper(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = sweep_stopped(&engine, SWEEP_AFTER).await {
                tracing::debug!(error = %e, "sweeping stopped sandboxes failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn engine_times_parse_and_zero_means_never() {
        assert!(parse_time("2026-12-06T02:39:19.192861424Z").is_some());
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_time("soon"), None);
    }
}
