//! Could any online node ever take this job? One answer for every caller that creates work (`run`, `ask`, the
//! agent turn's model steps): [`check`] reads the capabilities of the nodes seen in the last
//! [`crate::nodes::ONLINE_WITHIN`] and [`evaluate`] matches a job's executor and requirements against them the
//! way the claim does (`claim_jobs`: executor, template, model, GPU memory, labels; the co-location preference is
//! only a preference). A job no online node could take gets an [`Unschedulable`] reason with one sentence for the
//! requester that says what to do.
//!
//! "Online" is a snapshot: a node may come (its job is then claimed at once) or go (its queued work waits). The
//! reaper fails a job that was unschedulable when it was queued and still is after
//! `dispatch.unschedulable_after_s` ([`super::DispatchSettings::unschedulable_after`]).

use std::collections::BTreeMap;

use cynode_protocol::{Capabilities, ExecutorKind, Requirements};
use sqlx::PgPool;

/// Why no online node could take a job. [`Unschedulable::message`] is the sentence for the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unschedulable {
    /// No node is online at all.
    NoNodes {
        /// The executor the job needs (the advice depends on it).
        executor: ExecutorKind,
    },
    /// Nodes are online, but none runs this executor.
    NoExecutor(ExecutorKind),
    /// No online node of the executor offers this sandbox template (it lacks the image).
    NoTemplate(String),
    /// No online node of the executor serves this model.
    NoModel(String),
    /// No online node of the executor has a GPU with this much memory (MiB).
    NoGpu(u64),
    /// No online node of the executor carries all these labels.
    NoLabels(BTreeMap<String, String>),
    /// Every requirement is met by some online node, but no one node meets them all.
    NoSingleNode,
}

impl Unschedulable {
    /// A stable code for logs, metrics and API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoNodes { .. } => "no_nodes",
            Self::NoExecutor(_) => "no_executor",
            Self::NoTemplate(_) => "no_template",
            Self::NoModel(_) => "no_model",
            Self::NoGpu(_) => "no_gpu",
            Self::NoLabels(_) => "no_labels",
            Self::NoSingleNode => "no_single_node",
        }
    }

    /// One sentence for the requester: what is missing and what to do about it.
    pub fn message(&self) -> String {
        match self {
            Self::NoNodes { executor: ExecutorKind::Inference } | Self::NoExecutor(ExecutorKind::Inference) => {
                "No node answers questions yet: start `cynode-node` with an inference upstream \
                 (`--inference-url`) and a node key that grants `inference` — see docs/node-protocol.md — or \
                 add a model provider (`cynode admin provider add`, docs/configuration.md#model-providers)."
                    .into()
            }
            Self::NoNodes { .. } => "No node is online: start `cynode up` (which runs a local node) or a \
                                     `cynode-node` — see docs/operations.md."
                .into(),
            Self::NoExecutor(ExecutorKind::Docker) => {
                "No online node runs sandboxes: start `cynode-node` on a host with a reachable Docker engine \
                 — see docs/operations.md."
                    .into()
            }
            Self::NoExecutor(e) => format!(
                "No online node runs `{}` jobs: enable that executor on a node whose key grants it — see \
                 docs/node-protocol.md.",
                e.as_str()
            ),
            Self::NoTemplate(t) => format!(
                "No online node offers template `{t}`: build its image on a node (`cynode-node images build`) \
                 and restart the node, or pick another template with `run --template NAME`."
            ),
            Self::NoModel(m) => format!(
                "No online node serves model `{m}`: load it on a node's inference server, or ask for another model."
            ),
            Self::NoGpu(1) => {
                "No online node has a GPU: run it without `--gpu`, or start `cynode-node` on a GPU host.".into()
            }
            Self::NoGpu(mb) => {
                format!("No online node has a GPU with {mb} MiB of memory: start `cynode-node` on a bigger GPU host.")
            }
            Self::NoLabels(l) => {
                let labels: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "No online node carries the labels `{}`: add them to a node (`--label`), or drop them from the job.",
                    labels.join(",")
                )
            }
            Self::NoSingleNode => "No single online node offers everything this job needs (each need is met \
                                   by some node, never all by one): see `cynode nodes`."
                .into(),
        }
    }
}

impl std::fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// The capabilities of every online node (seen within [`crate::nodes::ONLINE_WITHIN`], key not revoked).
///
/// # Errors
/// Store failures.
pub async fn online_capabilities(pool: &PgPool) -> Result<Vec<Capabilities>, sqlx::Error> {
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT n.capabilities FROM nodes n JOIN node_keys k ON k.id = n.key_id
         WHERE k.revoked_at IS NULL AND n.last_seen_at > now() - $1 * interval '1 second'",
    )
    .bind(crate::nodes::online_within_s())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect())
}

/// Whether some online node could take a job of `executor` with `requirements`: `Ok(Err(reason))` when none
/// could.
///
/// # Errors
/// Store failures.
pub async fn check(
    pool: &PgPool,
    executor: ExecutorKind,
    requirements: &Requirements,
) -> Result<Result<(), Unschedulable>, sqlx::Error> {
    Ok(evaluate(&online_capabilities(pool).await?, executor, requirements))
}

/// Matches a job against `nodes` as the claim does; the first requirement that no node of the executor meets is
/// the reason (in the order executor, template, model, GPU, labels).
pub fn evaluate(nodes: &[Capabilities], executor: ExecutorKind, req: &Requirements) -> Result<(), Unschedulable> {
    if nodes.is_empty() {
        return Err(Unschedulable::NoNodes { executor });
    }
    let runs: Vec<&Capabilities> = nodes.iter().filter(|n| n.executors.contains(&executor)).collect();
    if runs.is_empty() {
        return Err(Unschedulable::NoExecutor(executor));
    }
    let template = |n: &Capabilities| req.template.as_ref().is_none_or(|t| n.templates.contains(t));
    let model = |n: &Capabilities| req.model.as_ref().is_none_or(|m| n.models.contains(m));
    let gpu = |n: &Capabilities| {
        req.gpu_memory_mb.is_none_or(|mb| n.gpus.iter().map(|g| g.memory_mb).max().unwrap_or(0) >= mb)
    };
    let labels = |n: &Capabilities| req.labels.iter().all(|(k, v)| n.labels.get(k) == Some(v));
    if !runs.iter().any(|n| template(n)) {
        return Err(Unschedulable::NoTemplate(req.template.clone().unwrap_or_default()));
    }
    if !runs.iter().any(|n| model(n)) {
        return Err(Unschedulable::NoModel(req.model.clone().unwrap_or_default()));
    }
    if !runs.iter().any(|n| gpu(n)) {
        return Err(Unschedulable::NoGpu(req.gpu_memory_mb.unwrap_or(0)));
    }
    if !runs.iter().any(|n| labels(n)) {
        return Err(Unschedulable::NoLabels(req.labels.clone()));
    }
    if !runs.iter().any(|n| template(n) && model(n) && gpu(n) && labels(n)) {
        return Err(Unschedulable::NoSingleNode);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cynode_protocol::GpuInfo;

    use super::*;

    fn docker(templates: &[&str]) -> Capabilities {
        Capabilities {
            executors: vec![ExecutorKind::Docker],
            templates: templates.iter().map(|t| (*t).to_string()).collect(),
            ..Capabilities::default()
        }
    }

    fn needs_template(t: &str) -> Requirements {
        Requirements { template: Some(t.into()), ..Requirements::default() }
    }

    #[test]
    fn each_missing_requirement_is_named() {
        let r = Requirements::default();
        assert_eq!(
            evaluate(&[], ExecutorKind::Docker, &r),
            Err(Unschedulable::NoNodes { executor: ExecutorKind::Docker })
        );
        let nodes = [docker(&["busybox"])];
        assert_eq!(
            evaluate(&nodes, ExecutorKind::Inference, &r),
            Err(Unschedulable::NoExecutor(ExecutorKind::Inference))
        );
        assert_eq!(evaluate(&nodes, ExecutorKind::Docker, &needs_template("busybox")), Ok(()));
        let rogue = evaluate(&nodes, ExecutorKind::Docker, &needs_template("rogue"));
        assert_eq!(rogue, Err(Unschedulable::NoTemplate("rogue".into())));
        let gpu = Requirements { gpu_memory_mb: Some(1), ..needs_template("busybox") };
        assert_eq!(evaluate(&nodes, ExecutorKind::Docker, &gpu), Err(Unschedulable::NoGpu(1)));
        let mut labels = BTreeMap::new();
        labels.insert("zone".to_string(), "eu".to_string());
        let l = Requirements { labels: labels.clone(), ..Requirements::default() };
        assert_eq!(evaluate(&nodes, ExecutorKind::Docker, &l), Err(Unschedulable::NoLabels(labels)));
        let m = Requirements { model: Some("llama".into()), ..Requirements::default() };
        let infer = Capabilities { executors: vec![ExecutorKind::Inference], ..Capabilities::default() };
        assert_eq!(evaluate(&[infer], ExecutorKind::Inference, &m), Err(Unschedulable::NoModel("llama".into())));
    }

    #[test]
    fn needs_met_by_different_nodes_are_not_enough() {
        let mut gpu_node = docker(&[]);
        gpu_node.gpus.push(GpuInfo { name: "A100".into(), memory_mb: 40_000, utilization_pct: None });
        let nodes = [docker(&["busybox"]), gpu_node.clone()];
        let both = Requirements { gpu_memory_mb: Some(1), ..needs_template("busybox") };
        assert_eq!(evaluate(&nodes, ExecutorKind::Docker, &both), Err(Unschedulable::NoSingleNode));
        gpu_node.templates.push("busybox".into());
        assert_eq!(evaluate(&[docker(&["busybox"]), gpu_node], ExecutorKind::Docker, &both), Ok(()));
    }

    #[test]
    fn messages_say_what_to_do_in_one_sentence() {
        let ask = Unschedulable::NoExecutor(ExecutorKind::Inference).message();
        assert!(ask.starts_with("No node answers questions yet: start `cynode-node`"), "{ask}");
        let rogue = Unschedulable::NoTemplate("rogue".into()).message();
        assert!(rogue.contains("template `rogue`") && rogue.contains("--template"), "{rogue}");
        for m in [ask, rogue] {
            assert_eq!(m.matches(". ").count(), 0, "one sentence: {m}");
        }
    }
}
