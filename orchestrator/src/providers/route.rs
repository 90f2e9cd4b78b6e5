//! Where a model call goes: a local inference node when one serves the model and the inference queue is short,
//! else the install's provider (an install's own before one for all installs), else nowhere (the reason from
//! [`crate::dispatch::feasible`]).

use std::collections::BTreeMap;

use cynode_protocol::{ExecutorKind, JobSpec, Requirements};
use sqlx::PgPool;
use uuid::Uuid;

use crate::dispatch::feasible::{self, Unschedulable};

/// The node label that binds a job to one provider's nodes (value: the provider id). Node keys that grant the
/// `provider` executor exist only for providers, so no other node can claim such a job.
pub const PROVIDER_LABEL: &str = "cynode.provider";

/// Who runs a model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An inference node.
    Node,
    /// This provider.
    Provider {
        /// Its id.
        id: Uuid,
        /// Its name.
        name: String,
    },
}

/// A routed model call: the requirements to queue it with, and who will run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The job's requirements (a provider call carries [`PROVIDER_LABEL`]).
    pub requirements: Requirements,
    /// Who runs it.
    pub via: Via,
}

/// The executor of a job: the spec's, except that an inference job bound to a provider runs on the provider
/// executor.
#[must_use]
pub fn executor_for(spec: &JobSpec, requirements: &Requirements) -> ExecutorKind {
    match spec.executor() {
        ExecutorKind::Inference if requirements.labels.contains_key(PROVIDER_LABEL) => ExecutorKind::Provider,
        e => e,
    }
}

/// Routes a call of `model` (`""`: the default model) for `install`: local nodes first; a provider when no online
/// node serves the model, or when its queue threshold is reached; `Err(reason)` when neither can serve it.
///
/// # Errors
/// Store failures.
pub async fn route(
    pool: &PgPool,
    install: Option<Uuid>,
    model: &str,
) -> Result<Result<Routed, Unschedulable>, sqlx::Error> {
    route_with(pool, install, model, &BTreeMap::new()).await
}

/// [`route`] for a call that also needs nodes carrying `labels` (an embed job: [`cynode_protocol::EMBED_LABEL`]).
///
/// # Errors
/// Store failures.
pub async fn route_with(
    pool: &PgPool,
    install: Option<Uuid>,
    model: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Result<Routed, Unschedulable>, sqlx::Error> {
    let nodes = feasible::online_capabilities(pool).await?;
    let wanted = (!model.is_empty()).then(|| model.to_string());
    let local_req = Requirements { model: wanted.clone(), labels: labels.clone(), ..Requirements::default() };
    let local = feasible::evaluate(&nodes, ExecutorKind::Inference, &local_req);
    // The install's own providers first, then those for every install; only those with a node online.
    let candidates: Vec<(Uuid, String, i32)> = sqlx::query_as(
        "SELECT id, name, queue_threshold FROM providers
         WHERE enabled AND (install_id IS NULL OR install_id = $1) AND ($2 = '' OR $2 = ANY (models))
         ORDER BY install_id IS NULL, name",
    )
    .bind(install)
    .bind(model)
    .fetch_all(pool)
    .await?;
    let provider = candidates.into_iter().find_map(|(id, name, threshold)| {
        let mut req = provider_requirements(wanted.clone(), id);
        req.labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        feasible::evaluate(&nodes, ExecutorKind::Provider, &req).is_ok().then_some((id, name, threshold, req))
    });
    let to_provider = |(id, name, _, req): (Uuid, String, i32, Requirements)| Routed {
        requirements: req,
        via: Via::Provider { id, name },
    };
    Ok(match (local, provider) {
        (Ok(()), Some(p)) if p.2 > 0 && queued_inference(pool, p.2).await? >= i64::from(p.2) => Ok(to_provider(p)),
        (Ok(()), _) => Ok(Routed { requirements: local_req, via: Via::Node }),
        (Err(_), Some(p)) => Ok(to_provider(p)),
        (Err(why), None) => Err(why),
    })
}

fn provider_requirements(model: Option<String>, id: Uuid) -> Requirements {
    let mut req = Requirements { model, ..Requirements::default() };
    req.labels.insert(PROVIDER_LABEL.to_string(), id.to_string());
    req
}

/// Queued inference jobs, counted up to `limit` (the index scan stops there).
async fn queued_inference(pool: &PgPool, limit: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE state = 'queued' AND executor = 'inference' LIMIT $1) q",
    )
    .bind(i64::from(limit))
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use cynode_protocol::InferenceSpec;

    use super::*;

    #[test]
    fn only_inference_bound_to_a_provider_runs_on_the_provider_executor() {
        let spec = JobSpec::Inference(InferenceSpec {
            model: String::new(),
            prompt: "hi".into(),
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            system: None,
            max_tokens: 8,
            timeout_s: 5,
        });
        let id = Uuid::now_v7();
        assert_eq!(executor_for(&spec, &Requirements::default()), ExecutorKind::Inference);
        assert_eq!(executor_for(&spec, &provider_requirements(None, id)), ExecutorKind::Provider);
    }
}
