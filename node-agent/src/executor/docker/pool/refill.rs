//! The pool's background task: keeps every image's pool full, one container at a time, and removes
//! containers the pool no longer wants. Engine failures back off (1 s doubling to 60 s) instead of
//! spinning; the task ends when the pool is stopped.

use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{AttachContainerOptions, CreateContainerOptions};

use super::{PoolShape, Shared};
use crate::executor::docker::config::pool_body;
use crate::executor::docker::engine::Engine;
use crate::executor::docker::error::ExecError;
use crate::executor::docker::remove::remove_or_retry;
use crate::executor::docker::warm::Idle;

const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

pub(super) async fn refill_loop(shared: Arc<Shared>) {
    let mut failures: u32 = 0;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let (retired, next) = {
            let mut state = shared.lock();
            let retired = std::mem::take(&mut state.retired);
            let next = state.slots.values_mut().find(|s| s.idle.len() + s.creating < shared.size).map(|s| {
                s.creating += 1;
                s.shape.clone()
            });
            (retired, next)
        };
        remove_all(&shared.engine, retired.into_iter().map(|idle| idle.id).collect()).await;
        let Some(shape) = next else {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = shared.stop.cancelled() => return,
            }
            continue;
        };
        let created = create_idle(&shared.engine, &shared.owner, &shape).await;
        let placed = {
            let mut state = shared.lock();
            let stopped = state.stopped || shared.stop.is_cancelled();
            match state.slots.get_mut(&shape.image) {
                Some(slot) => {
                    slot.creating -= 1;
                    match created {
                        Ok(idle) if !stopped && slot.shape == shape => {
                            slot.idle.push(idle);
                            Ok(None)
                        }
                        Ok(idle) => Ok(Some(idle.id)),
                        Err(e) => Err(e),
                    }
                }
                None => created.map(|idle| Some(idle.id)),
            }
        };
        match placed {
            Ok(unwanted) => {
                failures = 0;
                if let Some(id) = unwanted {
                    remove_all(&shared.engine, vec![id]).await;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = BACKOFF_BASE.saturating_mul(1 << failures.min(7).saturating_sub(1)).min(BACKOFF_CAP);
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, image = shape.image, failures, retry_in_ms = delay.as_millis() as u64,
                        "cannot create a warm sandbox container; jobs run cold meanwhile");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.stop.cancelled() => return,
                }
            }
        }
    }
}

/// Creates one idle pool container of `shape`, attaches to its stdin, stdout and stderr (before the start,
/// so the attach connection is in place when its stub starts reading), and starts it; a container that
/// cannot be attached to or started is removed.
async fn create_idle(engine: &Engine, owner: &str, shape: &PoolShape) -> Result<Idle, ExecError> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("cynode-pool-{}", &suffix[..12]);
    let docker = engine.docker();
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    let id = match docker.create_container(Some(options), pool_body(shape, owner)).await {
        Ok(created) => created.id,
        Err(e) => {
            let err = engine.err("create a warm sandbox container", e);
            if matches!(err, ExecError::EngineUnavailable { .. }) {
                // The engine may have created it and lost only the answer: remove it by name once it is back.
                remove_or_retry(engine.clone(), name).await;
            }
            return Err(err);
        }
    };
    let options =
        AttachContainerOptions { stream: true, stdin: true, stdout: true, stderr: true, ..Default::default() };
    let attach = match docker.attach_container(&id, Some(options)).await {
        Ok(attach) => attach,
        Err(e) => {
            remove_all(engine, vec![id]).await;
            return Err(engine.err("attach to a warm sandbox container", e));
        }
    };
    if let Err(e) = docker.start_container(&id, None).await {
        remove_all(engine, vec![id]).await;
        return Err(engine.err("start a warm sandbox container", e));
    }
    Ok(Idle { id, output: attach.output, input: attach.input })
}

/// Force-removes pool containers; one that is already gone is fine, and removal is retried in the
/// background while the engine is unreachable (see [`remove_or_retry`]).
pub(super) async fn remove_all(engine: &Engine, ids: Vec<String>) {
    for id in ids {
        remove_or_retry(engine.clone(), id).await;
    }
}
