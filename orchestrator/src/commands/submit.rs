//! Creating a task's job: in one transaction, the task (new, or the one ingress recorded), its job, and the
//! approval request when policy holds the job.

use cynode_protocol::{JobSpec, Requirements};
use uuid::Uuid;

use super::{ApprovalRequest, CommandError, Commands, Reply};
use crate::dispatch::feasible::Unschedulable;
use crate::outbox::{self, EventType};
use crate::policy::Decision;
use crate::tasks::{self, NewJob, Origin, short};
use crate::{approvals, audit};

impl Commands {
    /// Records the task (or takes over the recorded one) and its job. `None` when the recorded task already left
    /// `received` (another interpreter handled it), or when a task with the fixed id `new_id` exists already (an
    /// agent's tool call that ran before): nothing was written.
    #[expect(clippy::too_many_arguments, reason = "internal helper shared by run, ask and the agent's tools")]
    pub(super) async fn submit(
        &self,
        origin: &Origin,
        new_id: Option<Uuid>,
        command: &str,
        text: &str,
        args: &serde_json::Value,
        spec: JobSpec,
        requirements: Requirements,
        decision: &Decision,
        unschedulable: Option<&Unschedulable>,
    ) -> Result<Option<Reply>, CommandError> {
        let hold = matches!(decision, Decision::RequireApproval { .. });
        let mut tx = self.pool.begin().await?;
        let task = match origin.task_id {
            Some(task) => {
                // The task ingress recorded: claim it for this job, exactly once.
                let claimed = sqlx::query(
                    "UPDATE tasks SET command = $2, text = $3, args = $4, updated_at = now()
                     WHERE id = $1 AND state = 'received'",
                )
                .bind(task)
                .bind(command)
                .bind(text)
                .bind(args)
                .execute(&mut *tx)
                .await?;
                if claimed.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                task
            }
            None => match new_id {
                Some(id) => {
                    if !tasks::create_task_with_id(&mut tx, id, origin, command, text, args).await? {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    id
                }
                None => tasks::create_task(&mut tx, origin, command, text, args).await?,
            },
        };
        let spec_hash = crate::approvals::spec_hash(&spec);
        let job = NewJob { spec, requirements, priority: 0, max_attempts: self.settings.max_attempts, hold };
        let job_id = tasks::create_job(&mut tx, task, &job).await?;
        if let Some(why) = unschedulable {
            // Shown in the thread while the job waits; the reaper fails it if it is still so when its time is up.
            sqlx::query("UPDATE jobs SET unschedulable = $2 WHERE id = $1")
                .bind(job_id)
                .bind(why.message())
                .execute(&mut *tx)
                .await?;
        }
        let mut approval = None;
        if let Decision::RequireApproval { approvers, reason, required, requester_may_approve } = decision {
            let approval_id = Uuid::now_v7();
            let required = (*required).max(1);
            // The card shows the reason: say who may approve, and how many must.
            let who = approvals::who_may_approve(approvers, required, &origin.requester, *requester_may_approve);
            let card_reason = format!("{reason}; approval by {who}");
            sqlx::query(
                "INSERT INTO approvals (id, job_id, approvers, requested_by, expires_at, reason, spec_hash, required,
                                        requester_may_approve)
                 VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second', $6, $7, $8, $9)",
            )
            .bind(approval_id)
            .bind(job_id)
            .bind(serde_json::to_value(approvers).unwrap_or_default())
            .bind(&origin.requester)
            .bind(i64::try_from(self.settings.approval_ttl.as_secs()).unwrap_or(3600))
            .bind(&card_reason)
            .bind(spec_hash.as_slice())
            .bind(i32::try_from(required).unwrap_or(i32::MAX))
            .bind(requester_may_approve)
            .execute(&mut *tx)
            .await?;
            let detail = serde_json::json!({
                "job": job_id, "reason": card_reason, "approvers": approvers, "required": required,
                "requester_may_approve": requester_may_approve, "spec_sha256": hex::encode(spec_hash),
            });
            audit::append(&mut tx, &origin.requester, "approval.requested", &approval_id.to_string(), &detail).await?;
            approval = Some(ApprovalRequest {
                approval_id,
                approvers: approvers.clone(),
                reason: reason.clone(),
                who,
                required,
            });
        }
        let event = serde_json::json!({
            "task_id": task, "job_id": job_id, "install_id": origin.install_id, "requester": origin.requester,
            "source": origin.source, "command": command, "template": args.get("template"),
        });
        let mut emitted = outbox::emit(&mut tx, EventType::TaskCreated, task, &event).await?;
        emitted += match &approval {
            Some(a) => {
                let mut e = event.clone();
                e["approval_id"] = serde_json::json!(a.approval_id);
                e["approvers"] = serde_json::json!(a.approvers);
                e["reason"] = serde_json::json!(a.reason);
                e["required"] = serde_json::json!(a.required);
                outbox::emit(&mut tx, EventType::ApprovalRequested, a.approval_id, &e).await?
            }
            None => outbox::emit(&mut tx, EventType::JobQueued, job_id, &event).await?,
        };
        // The command and the policy decision on it, committed with the job (the chainer links it shortly after).
        let decided = serde_json::json!({
            "task": task, "job": job_id, "command": command, "install": origin.install_id, "source": origin.source,
            "decision": if hold { "require_approval" } else { "allow" }, "spec_sha256": hex::encode(spec_hash),
        });
        audit::append(&mut tx, &origin.requester, "job.submitted", &job_id.to_string(), &decided).await?;
        tx.commit().await?;
        if emitted > 0 {
            self.dispatcher.announce_outbox();
        }
        if !hold {
            self.dispatcher.announce();
        }
        let text = match &approval {
            Some(a) => format!(
                "Job `{}` needs approval ({}) by {}. An approver can answer `approve {}` or `deny {}`.",
                short(job_id),
                a.reason,
                a.who,
                short(job_id),
                short(job_id)
            ),
            None => String::new(),
        };
        Ok(Some(Reply { text, task_id: Some(task), job_id: Some(job_id), approval, refused: false }))
    }
}
