//! The Rego policy in commands: with a policy in `enforce` mode it decides (allow, deny with a reason, require
//! approval); in `shadow` mode the built-in YAML rules decide and what Rego would have decided is audited
//! (`policy.shadow`). An evaluation error refuses the job when the policy fails closed and falls back to the
//! built-in decision when it fails open; either way it is audited (`policy.error`). Denials are audited as
//! `policy.deny`.

use cynode_protocol::JobSpec;

use super::{CommandError, Commands, Reply, refusal};
use crate::approvals;
use crate::audit;
use crate::policy::Decision;
use crate::policy::rego::{Input, Mode, RegoDecision};
use crate::tasks::Origin;

impl Commands {
    /// The policy input for a job request (also what `cynode policy explain` shows).
    pub(crate) async fn policy_input<'a>(
        &self,
        origin: &'a Origin,
        command: &'a str,
        spec: &JobSpec,
    ) -> Result<Input<'a>, CommandError> {
        let standing = self.standing(origin).await?;
        let channel: Option<String> = match origin.conversation_id {
            Some(c) => {
                sqlx::query_scalar("SELECT channel FROM conversations WHERE id = $1")
                    .bind(c)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => None,
        };
        Ok(Input {
            user: &origin.requester,
            install: origin.install_id,
            source: &origin.source,
            roles: standing.map(|s| vec![s.role.as_str()]).unwrap_or_default(),
            channel,
            command,
            job: approvals::canonical_spec(spec),
            time: chrono::Utc::now(),
        })
    }

    /// Applies the install's Rego policy, if any, to the built-in `decision`: `Ok(decision)` to go on with, or
    /// `Err(reply)` refusing the job.
    pub(super) async fn apply_rego(
        &self,
        origin: &Origin,
        command: &str,
        spec: &JobSpec,
        builtin: Decision,
    ) -> Result<Result<Decision, Reply>, CommandError> {
        let Some(active) = self.rego.active(&self.pool, origin.install_id).await? else { return Ok(Ok(builtin)) };
        let input = self.policy_input(origin, command, spec).await?;
        let evaluated = active.policy.as_ref().map_err(Clone::clone).and_then(|p| p.decide(&input.to_json()));
        let mode = if active.mode == Mode::Enforce { "enforce" } else { "shadow" };
        let subject = format!("policy:{}", active.name);
        let mut tx = self.pool.begin().await?;
        let outcome = match (&evaluated, active.mode) {
            (Err(e), Mode::Enforce) if !active.fail_open => {
                let detail = serde_json::json!({ "mode": mode, "on_error": "closed", "error": e, "command": command });
                audit::append(&mut tx, &origin.requester, "policy.error", &subject, &detail).await?;
                Err(refusal(format!(
                    "The team's policy `{}` could not be evaluated, and it fails closed, so nothing was run. An \
                     admin can check it with `cynode policy explain`.",
                    active.name
                )))
            }
            (Err(e), _) => {
                let on_error = if active.fail_open { "open" } else { "closed" };
                let detail = serde_json::json!({ "mode": mode, "on_error": on_error, "error": e, "command": command });
                audit::append(&mut tx, &origin.requester, "policy.error", &subject, &detail).await?;
                Ok(builtin)
            }
            (Ok(d), Mode::Shadow) => {
                let would = d.to_json();
                let detail = serde_json::json!({
                    "would": would, "enforced": builtin_json(&builtin), "command": command, "job": input.job,
                });
                audit::append(&mut tx, &origin.requester, "policy.shadow", &subject, &detail).await?;
                Ok(builtin)
            }
            (Ok(RegoDecision::Deny(reason)), Mode::Enforce) => {
                let detail = serde_json::json!({ "reason": reason, "command": command, "job": input.job });
                audit::append(&mut tx, &origin.requester, "policy.deny", &subject, &detail).await?;
                Err(refusal(format!("Policy `{}` refuses this: {reason}", active.name)))
            }
            (Ok(RegoDecision::Allow), Mode::Enforce) => Ok(Decision::Allow),
            (Ok(RegoDecision::RequireApproval { approvers, count, reason }), Mode::Enforce) => {
                Ok(Decision::RequireApproval {
                    approvers: approvers.clone(),
                    reason: reason.clone(),
                    required: *count,
                    requester_may_approve: false,
                })
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

fn builtin_json(d: &Decision) -> serde_json::Value {
    match d {
        Decision::Allow => serde_json::json!({ "allow": true }),
        Decision::RequireApproval { approvers, reason, required, .. } => serde_json::json!({
            "require_approval": { "approvers": approvers, "count": required, "reason": reason }
        }),
    }
}

impl Commands {
    /// `cynode policy explain JOB`: the input the job's request gives the policy in force for its install, and
    /// what the policy decides for it now (`None`: no such job).
    ///
    /// # Errors
    /// Store failures.
    pub async fn explain(&self, job: &str) -> Result<Option<serde_json::Value>, CommandError> {
        let Ok(id) = self.find(job).await? else { return Ok(None) };
        let row: (String, Option<uuid::Uuid>, Option<uuid::Uuid>, String, String, serde_json::Value) = sqlx::query_as(
            "SELECT t.requester, t.install_id, t.conversation_id, t.source, t.command, j.spec
             FROM jobs j JOIN tasks t ON t.id = j.task_id WHERE j.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let (requester, install_id, conversation_id, source, command, spec) = row;
        let origin = Origin { install_id, conversation_id, requester, source, ..Origin::default() };
        let Ok(spec) = serde_json::from_value::<JobSpec>(spec) else {
            return Ok(Some(serde_json::json!({ "job": id, "error": "the stored job spec does not read as a spec" })));
        };
        let input = self.policy_input(&origin, &command, &spec).await?.to_json();
        let Some(active) = self.rego.active(&self.pool, install_id).await? else {
            return Ok(Some(serde_json::json!({
                "job": id, "policy": null, "input": input,
                "note": "no Rego policy is imported for this install; the built-in YAML rules decide",
            })));
        };
        let result = match active.policy.as_ref().map_err(Clone::clone).and_then(|p| p.decide(&input)) {
            Ok(d) => serde_json::json!({ "decision": d.to_json() }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        Ok(Some(serde_json::json!({
            "job": id,
            "policy": active.name,
            "mode": if active.mode == Mode::Enforce { "enforce" } else { "shadow" },
            "on_error": if active.fail_open { "open" } else { "closed" },
            "input": input,
            "result": result,
        })))
    }
}
