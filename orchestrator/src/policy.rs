//! Approval policy: ordered rules per install decide whether a job waits for approval, who may approve, how many
//! of them must, and whether the requester may approve their own job.

pub mod rego;

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

/// What is being asked for, as policy sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Install (None: console/API without install).
    pub install_id: Option<Uuid>,
    /// Template name.
    pub template: Option<&'a str>,
    /// Network access.
    pub network: bool,
    /// GPU use.
    pub gpu: bool,
    /// Requesting user.
    pub requester: &'a str,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Queue right away.
    Allow,
    /// Hold for one of these approvers.
    RequireApproval {
        /// Platform user ids.
        approvers: Vec<String>,
        /// Why (for the approval card).
        reason: String,
        /// How many distinct approvers must approve (N of M; at least 1).
        required: u32,
        /// Whether the requester, when an approver, may approve their own job.
        requester_may_approve: bool,
    },
}

#[derive(Debug, Deserialize)]
struct Rule {
    #[serde(default)]
    when: Match,
    #[serde(default = "yes")]
    require_approval: bool,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    approvals: Option<u32>,
    #[serde(default)]
    requester_may_approve: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Match {
    template: Option<Vec<String>>,
    network: Option<bool>,
    gpu: Option<bool>,
    requester: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl Match {
    fn matches(&self, r: &Request<'_>) -> bool {
        self.template.as_ref().is_none_or(|t| r.template.is_some_and(|name| t.iter().any(|x| x == name)))
            && self.network.is_none_or(|n| n == r.network)
            && self.gpu.is_none_or(|g| g == r.gpu)
            && self.requester.as_ref().is_none_or(|u| u.iter().any(|x| x == r.requester))
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.network == Some(true) {
            parts.push("network access".to_string());
        }
        if self.gpu == Some(true) {
            parts.push("GPU use".to_string());
        }
        if let Some(t) = &self.template {
            parts.push(format!("template {}", t.join("/")));
        }
        if parts.is_empty() { "policy".to_string() } else { parts.join(", ") }
    }
}

/// Evaluates the rules for the request's install, first match wins; no match allows. A rule that cannot be read
/// holds the job (with no approvers it can only expire), so a damaged policy never lets jobs through.
///
/// # Errors
/// Store failures.
pub async fn evaluate(pool: &PgPool, req: &Request<'_>) -> Result<Decision, sqlx::Error> {
    let rules: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT rule FROM policy_rules WHERE install_id IS NULL OR install_id = $1 ORDER BY position",
    )
    .bind(req.install_id)
    .fetch_all(pool)
    .await?;
    for raw in rules {
        let Ok(rule) = serde_json::from_value::<Rule>(raw) else {
            // Fail closed: a rule nobody can read must not let jobs through that it was meant to hold.
            tracing::error!("a stored policy rule cannot be read; holding the job (fix the policy and re-import)");
            return Ok(Decision::RequireApproval {
                approvers: Vec::new(),
                reason: "unreadable policy rule".into(),
                required: 1,
                requester_may_approve: false,
            });
        };
        if rule.when.matches(req) {
            return Ok(if rule.require_approval {
                Decision::RequireApproval {
                    reason: rule.when.describe(),
                    approvers: rule.approvers,
                    required: rule.approvals.unwrap_or(1).max(1),
                    requester_may_approve: rule.requester_may_approve,
                }
            } else {
                Decision::Allow
            });
        }
    }
    Ok(Decision::Allow)
}

/// Whether `user` approves anything for this install (approvers may also cancel others' jobs).
///
/// # Errors
/// Store failures.
pub async fn is_approver(pool: &PgPool, install_id: Option<Uuid>, user: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM policy_rules
                        WHERE (install_id IS NULL OR install_id = $1) AND rule->'approvers' ? $2)",
    )
    .bind(install_id)
    .bind(user)
    .fetch_one(pool)
    .await
}
