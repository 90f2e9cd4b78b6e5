//! `approve` and `deny`: the one check every approval goes through, whether the click came from Slack, Discord or
//! Telegram, the API or the CLI. A vote counts only when its author is one of the approvers (and not the
//! requester unless policy allows it), the request has not expired, and the job's spec still hashes to what
//! approval was asked for. N-of-M: the job queues once `required` distinct approvers approved; one deny
//! cancels it. Every vote and every refusal is in the audit log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CommandError, Commands, Reply, refusal};
use crate::tasks::{self, Origin, short};
use crate::team::TeamRole;
use crate::{approvals, audit};

/// The pending approval of a job, locked with the job.
#[derive(sqlx::FromRow)]
struct Pending {
    id: Uuid,
    approvers: serde_json::Value,
    required: i32,
    requester_may_approve: bool,
    requested_by: String,
    spec_hash: Option<Vec<u8>>,
    expires_at: DateTime<Utc>,
    expired: bool,
    task_id: Uuid,
    install_id: Option<Uuid>,
    spec: serde_json::Value,
}

impl Commands {
    pub(super) async fn decide(&self, origin: &Origin, job: &str, approve: bool) -> Result<Reply, CommandError> {
        let id = match self.find(job).await? {
            Ok(id) => id,
            // Not a job: perhaps a proposal of install-wide memory.
            Err(r) => return Ok(self.review_memory(origin, job, approve).await?.unwrap_or(r)),
        };
        let mut tx = self.pool.begin().await?;
        let pending: Option<Pending> = sqlx::query_as(
            "SELECT a.id, a.approvers, a.required, a.requester_may_approve, a.requested_by, a.spec_hash,
                    a.expires_at, a.expires_at <= now() AS expired, j.task_id, t.install_id, j.spec
             FROM approvals a JOIN jobs j ON j.id = a.job_id JOIN tasks t ON t.id = j.task_id
             WHERE a.job_id = $1 AND a.state = 'pending' AND j.state = 'awaiting_approval' FOR UPDATE OF a, j",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(p) = pending else {
            let last: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT state, decided_by FROM approvals WHERE job_id = $1 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let why = match last {
                Some((state, Some(by))) if state == "approved" || state == "denied" => {
                    format!(": it was already {state} by {by}")
                }
                Some((state, _)) if state == "expired" => {
                    ": its approval request expired and the job was cancelled; run the command again to ask anew".into()
                }
                _ => String::new(),
            };
            return Ok(refusal(format!("Job `{}` is not waiting for approval{why}.", short(id))));
        };
        let approvers: Vec<String> = serde_json::from_value(p.approvers.clone()).unwrap_or_default();
        let required = u32::try_from(p.required).unwrap_or(1).max(1);
        let who = approvals::who_may_approve(&approvers, required, &p.requested_by, p.requester_may_approve);
        let current = approvals::stored_spec_hash(&p.spec);
        // `role:approver` / `role:admin` entries: anyone with that role (or admin) in the job's install.
        let by_role = if approvers.iter().any(|a| a.starts_with("role:")) && origin.install_id == p.install_id {
            self.standing(origin).await?.is_some_and(|s| {
                let has = |r: &str| approvers.iter().any(|a| a.strip_prefix("role:") == Some(r));
                (has("approver") && s.role >= TeamRole::Approver) || (has("admin") && s.role == TeamRole::Admin)
            })
        } else {
            false
        };
        if let Some(why) = refusal_reason(origin, &p, &approvers, by_role, approve, current.as_ref()) {
            let detail = serde_json::json!({ "job": id, "approve": approve, "refused": why.code() });
            audit::append(&mut tx, &origin.requester, "approval.refused", &p.id.to_string(), &detail).await?;
            tx.commit().await?;
            return Ok(refusal(why.message(id, &who, &p.expires_at)));
        }
        let spec_hash = current.unwrap_or_default();
        let verdict = if approve { "approve" } else { "deny" };
        let voted = sqlx::query(
            "INSERT INTO approval_votes (approval_id, approver, verdict, spec_hash) VALUES ($1, $2, $3, $4)
             ON CONFLICT (approval_id, approver) DO NOTHING",
        )
        .bind(p.id)
        .bind(&origin.requester)
        .bind(verdict)
        .bind(spec_hash.as_slice())
        .execute(&mut *tx)
        .await?;
        if voted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(refusal(format!(
                "You already voted on job `{}`; it needs {} approvals in all, from {who}.",
                short(id),
                required
            )));
        }
        let approvals_so_far: Vec<String> = sqlx::query_scalar(
            "SELECT approver FROM approval_votes WHERE approval_id = $1 AND verdict = 'approve' ORDER BY at, approver",
        )
        .bind(p.id)
        .fetch_all(&mut *tx)
        .await?;
        let count = u32::try_from(approvals_so_far.len()).unwrap_or(u32::MAX);
        let detail = serde_json::json!({
            "job": id, "verdict": verdict, "spec_sha256": hex::encode(spec_hash), "approvals": count,
            "required": required,
        });
        audit::append(&mut tx, &origin.requester, "approval.vote", &p.id.to_string(), &detail).await?;
        if approve && count < required {
            tx.commit().await?;
            self.dispatcher.events().announce([id]);
            let left = required - count;
            return Ok(Reply {
                text: format!(
                    "Approval {count} of {required} for job `{}` recorded by {}; {left} more needed from {who}.",
                    short(id),
                    origin.requester
                ),
                job_id: Some(id),
                task_id: Some(p.task_id),
                ..Reply::default()
            });
        }
        let state = if approve { "approved" } else { "denied" };
        // The decision carries whoever completed it, with the name the platform sent with this very request (never
        // used to authorise, only to show); every approver of an N-of-M decision is in `approval_votes`, the reply
        // and the audit log.
        let decided_by = origin.requester.clone();
        let by_all = if approve && required > 1 { approvals_so_far.join(", ") } else { origin.requester.clone() };
        sqlx::query(
            "UPDATE approvals SET state = $2, decided_by = $3, decided_at = now(),
                 decided_by_name = (SELECT left(e.payload->'actor'->>'name', 80) FROM inbound_events e
                                    WHERE e.id = $4 AND e.payload->'actor'->>'id' = $3)
             WHERE id = $1",
        )
        .bind(p.id)
        .bind(state)
        .bind(&decided_by)
        .bind(origin.inbound_id)
        .execute(&mut *tx)
        .await?;
        if approve {
            sqlx::query("UPDATE jobs SET state = 'queued', run_after = now() WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = now(),
                 result = jsonb_build_object('status', 'cancelled', 'duration_ms', 0, 'message', $2::text)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(format!("denied by {}", origin.requester))
            .execute(&mut *tx)
            .await?;
        }
        tasks::settle(&mut tx, p.task_id).await?;
        let detail = serde_json::json!({
            "job": id, "verdict": state, "by": by_all, "spec_sha256": hex::encode(spec_hash),
        });
        audit::append(&mut tx, &origin.requester, "approval.resolved", &p.id.to_string(), &detail).await?;
        let event = serde_json::json!({
            "approval_id": p.id, "job_id": id, "task_id": p.task_id, "install_id": p.install_id, "verdict": state,
            "by": decided_by, "approved_by": approvals_so_far,
        });
        let emitted = crate::outbox::emit(&mut tx, crate::outbox::EventType::ApprovalResolved, p.id, &event).await?;
        tx.commit().await?;
        self.dispatcher.events().announce([id]);
        if emitted > 0 {
            self.dispatcher.announce_outbox();
        }
        if approve {
            self.dispatcher.announce();
        }
        Ok(Reply {
            text: format!("Job `{}` {state} by {by_all}.", short(id)),
            job_id: Some(id),
            task_id: Some(p.task_id),
            approval: None,
            refused: false,
        })
    }
}

/// Why a vote does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The click came through another install than the job's.
    OtherInstall,
    /// Not one of the approvers.
    NotApprover,
    /// The requester, and policy does not let requesters approve their own jobs.
    Requester,
    /// The request expired (the reaper cancels the job shortly).
    Expired,
    /// The job's spec no longer hashes to what approval was asked for (or the request predates spec binding).
    SpecChanged,
}

impl Refused {
    const fn code(self) -> &'static str {
        match self {
            Self::OtherInstall => "other_install",
            Self::NotApprover => "not_approver",
            Self::Requester => "requester",
            Self::Expired => "expired",
            Self::SpecChanged => "spec_changed",
        }
    }

    fn message(self, job: Uuid, who: &str, expires_at: &DateTime<Utc>) -> String {
        let job = short(job);
        match self {
            Self::OtherInstall | Self::NotApprover => {
                format!("You are not an approver for job `{job}`; it needs approval by {who}.")
            }
            Self::Requester => format!(
                "You requested job `{job}`, and policy does not let requesters approve their own jobs; it needs \
                 approval by {who}."
            ),
            Self::Expired => format!(
                "The approval request for job `{job}` expired at {}; run the command again to ask anew.",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
            Self::SpecChanged => format!(
                "Job `{job}` changed after approval was requested (what it would run is no longer what approvers \
                 were asked about), so this approval cannot cover it; run the command again to ask anew."
            ),
        }
    }
}

fn refusal_reason(
    origin: &Origin,
    p: &Pending,
    approvers: &[String],
    by_role: bool,
    approve: bool,
    current: Option<&[u8; 32]>,
) -> Option<Refused> {
    if origin.install_id.is_some() && origin.install_id != p.install_id {
        return Some(Refused::OtherInstall);
    }
    if !by_role && !approvers.iter().any(|a| a == &origin.requester) {
        return Some(Refused::NotApprover);
    }
    if approve && origin.requester == p.requested_by && !p.requester_may_approve {
        return Some(Refused::Requester);
    }
    if p.expired {
        return Some(Refused::Expired);
    }
    // Denying needs no binding (it only stops the job); approving does.
    if approve && (p.spec_hash.is_none() || current.map(|h| h.as_slice()) != p.spec_hash.as_deref()) {
        return Some(Refused::SpecChanged);
    }
    None
}
