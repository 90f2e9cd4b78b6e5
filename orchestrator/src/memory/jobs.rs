//! Embeddings from the inference nodes: every [`Embedder::embed`] call becomes one `embed` job per batch of up
//! to [`MAX_EMBED_INPUTS`] texts, under a task of its own (`source = 'memory'`), routed like a model call (a
//! local inference node that serves the model, else a provider: [`crate::providers::route_with`]) and so leased,
//! fenced, retried and counted in the usage ledger like every other job. Only nodes that carry
//! [`EMBED_LABEL`] take embed jobs. When no online node or provider could run the job, the call fails at once
//! with the dispatcher's reason instead of waiting out its timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cynode_protocol::{
    EMBED_LABEL, EMBED_LABEL_VALUE, EmbedInputType, EmbedSpec, ExecutorKind, JobSpec, MAX_EMBED_INPUT_CHARS,
    MAX_EMBED_INPUTS, Requirements,
};
use futures_util::future::BoxFuture;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::embed::{EmbedError, Embedder, InputKind};
use crate::dispatch::Dispatcher;
use crate::dispatch::feasible::{self, Unschedulable};
use crate::tasks::{self, NewJob, Origin};

/// How long a waiter sleeps between looks at its job when no local finish wakes it (a node of another replica
/// finished it).
const POLL: Duration = Duration::from_millis(200);

/// What [`JobEmbedder`] sends.
#[derive(Debug, Clone)]
pub struct JobEmbedderConfig {
    /// The model as the nodes' servers know it (stored with every vector).
    pub model: String,
    /// Send `input_type` (`query`/`passage`) with the texts, for e5-style servers.
    pub input_type: bool,
    /// How long one job may take, queue included; it is cancelled after that.
    pub timeout: Duration,
    /// Leases a job gets before it fails.
    pub max_attempts: i32,
}

impl JobEmbedderConfig {
    /// Checks the model name ([`super::embed::validate_model`]: it names an index).
    ///
    /// # Errors
    /// What is wrong, for the operator.
    pub fn validate(&self) -> Result<(), String> {
        super::embed::validate_model(&self.model)
    }
}

/// Embeds through `embed` jobs on the inference nodes (or a provider).
pub struct JobEmbedder {
    pool: PgPool,
    dispatcher: Arc<Dispatcher>,
    config: JobEmbedderConfig,
}

impl std::fmt::Debug for JobEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEmbedder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl JobEmbedder {
    /// An embedder that queues its jobs in `pool` and wakes nodes through `dispatcher`.
    ///
    /// # Errors
    /// An invalid model name ([`JobEmbedderConfig::validate`]).
    pub fn new(pool: PgPool, dispatcher: Arc<Dispatcher>, config: JobEmbedderConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self { pool, dispatcher, config })
    }

    async fn run(&self, texts: &[String], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(MAX_EMBED_INPUTS) {
            out.extend(self.one_job(batch, kind).await?);
        }
        Ok(out)
    }

    /// Queues one job for `batch` and waits for its vectors.
    async fn one_job(&self, batch: &[String], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        let store = |e: sqlx::Error| EmbedError::Store(e.to_string());
        let model = &self.config.model;
        let labels = BTreeMap::from([(EMBED_LABEL.to_owned(), EMBED_LABEL_VALUE.to_owned())]);
        let routed = match crate::providers::route_with(&self.pool, None, model, &labels).await.map_err(store)? {
            Ok(r) => r,
            Err(why) => {
                // Would a node serve the model but for the label? Then those nodes predate embed jobs.
                let plain = Requirements { model: Some(model.clone()), ..Requirements::default() };
                let old = feasible::check(&self.pool, ExecutorKind::Inference, &plain).await.map_err(store)?.is_ok();
                return Err(unavailable(model, &why, old));
            }
        };
        let spec = JobSpec::Embed(EmbedSpec {
            model: model.clone(),
            // A memory is at most this long; a longer recall query is embedded by its head.
            input: batch.iter().map(|t| t.chars().take(MAX_EMBED_INPUT_CHARS).collect()).collect(),
            input_type: self.config.input_type.then_some(match kind {
                InputKind::Query => EmbedInputType::Query,
                InputKind::Passage => EmbedInputType::Passage,
            }),
            timeout_s: self.config.timeout.as_secs().max(1),
        });
        let job = NewJob {
            spec,
            requirements: routed.requirements,
            priority: 0,
            max_attempts: self.config.max_attempts.max(1),
            hold: false,
        };
        // Subscribed before the job exists, so its finish cannot slip by.
        let mut finished = self.dispatcher.finished();
        let origin = Origin { requester: "memory".into(), source: "memory".into(), ..Origin::default() };
        let args = serde_json::json!({ "model": model, "texts": batch.len() });
        let mut tx = self.pool.begin().await.map_err(store)?;
        let task = tasks::create_task(&mut tx, &origin, "memory.embed", "", &args).await.map_err(store)?;
        let id = tasks::create_job(&mut tx, task, &job).await.map_err(store)?;
        tx.commit().await.map_err(store)?;
        self.dispatcher.announce();
        // A caller that stops waiting (recall and writes wait only briefly) leaves no job behind.
        let mut guard = CancelOnDrop { pool: self.pool.clone(), id, armed: true };
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        loop {
            if let Some(done) = self.ended(id, batch.len()).await? {
                guard.armed = false;
                return done;
            }
            // Woken by this replica's finish of the job (or a lag); the poll covers other replicas.
            let wake = async {
                loop {
                    match finished.recv().await {
                        Ok(j) if j != id => {}
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                        Ok(_) | Err(RecvError::Lagged(_)) => return,
                    }
                }
            };
            tokio::select! {
                () = wake => {}
                () = tokio::time::sleep(POLL) => {}
                () = tokio::time::sleep_until(deadline) => {
                    // One last look: it may have finished just now.
                    if let Some(done) = self.ended(id, batch.len()).await? {
                        guard.armed = false;
                        return done;
                    }
                    guard.armed = false;
                    cancel(&self.pool, id).await.map_err(store)?;
                    return Err(EmbedError::TimedOut { job: tasks::short(id), secs: self.config.timeout.as_secs() });
                }
            }
        }
    }

    /// The job's vectors or why there are none, once it ended; `None` while it has not.
    async fn ended(&self, id: Uuid, n: usize) -> Result<Option<Result<Vec<Vec<f32>>, EmbedError>>, EmbedError> {
        let (state, result): (String, Option<Value>) = sqlx::query_as("SELECT state, result FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| EmbedError::Store(e.to_string()))?;
        let message = || {
            let m = result.as_ref().and_then(|r| r["message"].as_str()).unwrap_or("no reason given");
            super::clip(m, 300)
        };
        let failed =
            |state: &str| EmbedError::JobFailed { job: tasks::short(id), state: state.into(), message: message() };
        Ok(match state.as_str() {
            "succeeded" => Some(vectors(result.as_ref(), n)),
            "failed" => Some(Err(failed("failed"))),
            "timed_out" => Some(Err(failed("timed out"))),
            "cancelled" => Some(Err(failed("was cancelled"))),
            _ => None,
        })
    }
}

/// The vectors of a succeeded job's result: `n` of one size (the node checked them; a result that is not what
/// it should be is refused here too).
fn vectors(result: Option<&Value>, n: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let bad = |m: String| EmbedError::Malformed(m);
    let raw = result.map(|r| r["embeddings"].clone()).unwrap_or(Value::Null);
    let vectors: Vec<Vec<f32>> =
        serde_json::from_value(raw).map_err(|_| bad("the embed job's result has no vectors".into()))?;
    if vectors.len() != n {
        return Err(bad(format!("the embed job returned {} vectors for {n} texts", vectors.len())));
    }
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 || vectors.iter().any(|v| v.len() != dims || v.iter().any(|x| !x.is_finite())) {
        return Err(bad("the embed job returned empty, ragged or non-finite vectors".into()));
    }
    Ok(vectors)
}

/// The reason no node can run the job; a missing [`EMBED_LABEL`] means the nodes predate embed jobs.
fn unavailable(model: &str, why: &Unschedulable, old_nodes: bool) -> EmbedError {
    let why = if old_nodes {
        "the online inference nodes that serve it run an older cynode-node without embed jobs; upgrade them".to_owned()
    } else {
        why.message()
    };
    EmbedError::Unavailable { model: model.to_owned(), why }
}

/// Cancels the job when the wait for it is dropped before it ended.
struct CancelOnDrop {
    pool: PgPool,
    id: Uuid,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (pool, id) = (self.pool.clone(), self.id);
            rt.spawn(async move {
                if let Err(e) = cancel(&pool, id).await {
                    tracing::warn!(job.id = %id, error = %e, "could not cancel an embed job nobody waits for");
                }
            });
        }
    }
}

/// Cancels a job the embedder gave up on: a queued one at once, a running one through its node.
async fn cancel(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let task: Option<Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET state = 'cancelled', finished_at = now(),
         result = jsonb_build_object('status', 'cancelled', 'duration_ms', 0, 'message',
                                     'the memory embedder stopped waiting for it')
         WHERE id = $1 AND state IN ('queued', 'awaiting_approval') RETURNING task_id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1 AND state IN ('leased', 'running')")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if let Some(task) = task {
        tasks::settle(&mut tx, task).await?;
    }
    tx.commit().await
}

impl Embedder for JobEmbedder {
    fn model(&self) -> &str {
        &self.config.model
    }

    fn embed<'a>(&'a self, texts: &'a [String], kind: InputKind) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            self.run(texts, kind).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_checked_again() {
        let r = serde_json::json!({"status": "succeeded", "embeddings": [[1.0, 0.0], [0.0, 1.0]]});
        assert_eq!(vectors(Some(&r), 2), Ok(vec![vec![1.0, 0.0], vec![0.0, 1.0]]));
        assert!(vectors(Some(&r), 3).expect_err("count").to_string().contains("2 vectors for 3 texts"));
        let none = serde_json::json!({"status": "succeeded"});
        assert!(vectors(Some(&none), 1).expect_err("none").to_string().contains("no vectors"));
        let ragged = serde_json::json!({"embeddings": [[1.0], [0.0, 1.0]]});
        assert!(vectors(Some(&ragged), 2).expect_err("ragged").to_string().contains("ragged"));
        let old = unavailable("e5", &Unschedulable::NoSingleNode, true);
        assert!(old.to_string().contains("older cynode-node"), "{old}");
        let none = unavailable("e5", &Unschedulable::NoModel("e5".into()), false);
        assert!(none.to_string().contains("No online node serves model `e5`"), "{none}");
    }
}
