//! Policy as code: a Rego policy (the policy language of Open Policy Agent), evaluated in-process with the
//! `regorus` interpreter. CyNode evaluates `data.cynode.decision` with the request as `input` (principal, roles,
//! channel, command, canonical job spec, time) and expects `{"allow": true}`, `{"deny": "reason"}` or
//! `{"require_approval": {"approvers": […], "count": N, "reason": "…"}}`. A policy is compiled once per change and
//! shared; each evaluation clones the compiled engine (cheap) and sets the input.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The rule CyNode evaluates.
pub const DECISION_RULE: &str = "data.cynode.decision";

/// What a Rego policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegoDecision {
    /// Run it.
    Allow,
    /// Refuse it, with the reason shown to the user.
    Deny(String),
    /// Hold it for `count` of `approvers`.
    RequireApproval {
        /// Platform user ids or `role:approver` / `role:admin`.
        approvers: Vec<String>,
        /// How many must approve (at least 1).
        count: u32,
        /// Shown on the card.
        reason: String,
    },
}

impl RegoDecision {
    /// The decision as JSON (for the audit log and `cynode policy explain`).
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Self::Allow => json!({ "allow": true }),
            Self::Deny(reason) => json!({ "deny": reason }),
            Self::RequireApproval { approvers, count, reason } => {
                json!({ "require_approval": { "approvers": approvers, "count": count, "reason": reason } })
            }
        }
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct RegoPolicy {
    engine: regorus::Engine,
}

impl RegoPolicy {
    /// Parses `source` (named `file` in messages). A syntax error is returned with the file, line and column.
    ///
    /// # Errors
    /// The parser's message.
    pub fn compile(file: &str, source: &str) -> Result<Self, String> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        engine.add_policy(file.to_string(), source.to_string()).map_err(|e| one_line(&format!("{e}")))?;
        let packages = engine.get_packages().map_err(|e| format!("{e}"))?;
        if !packages.iter().any(|p| p == "data.cynode") {
            return Err(format!("{file}: the policy must be `package cynode` (it defines `decision`)"));
        }
        Ok(Self { engine })
    }

    /// Evaluates the decision for `input`.
    ///
    /// # Errors
    /// An evaluation error, or a result that is not one of the three shapes.
    pub fn decide(&self, input: &Value) -> Result<RegoDecision, String> {
        let mut engine = self.engine.clone();
        engine.set_input_json(&input.to_string()).map_err(|e| format!("input: {e}"))?;
        let out = engine.eval_rule(DECISION_RULE.to_string()).map_err(|e| format!("{e}"))?;
        if out == regorus::Value::Undefined {
            return Err(format!("{DECISION_RULE} is undefined for this input (give it a default)"));
        }
        let out: Value = serde_json::from_str(&out.to_json_str().map_err(|e| format!("{e}"))?)
            .map_err(|e| format!("result: {e}"))?;
        parse_decision(&out)
    }
}

/// The parser's report (`--> FILE:LINE:COL`, the source line, a caret, `KIND: MESSAGE`) as one line:
/// `FILE:LINE:COL: KIND: MESSAGE`.
fn one_line(report: &str) -> String {
    let location = report.lines().find_map(|l| l.trim().strip_prefix("--> "));
    let message = report.lines().rev().map(str::trim).find(|l| !l.is_empty());
    match (location, message) {
        (Some(at), Some(m)) if !m.starts_with("--> ") => format!("{at}: {m}"),
        _ => report.trim().to_string(),
    }
}

fn parse_decision(out: &Value) -> Result<RegoDecision, String> {
    if out.get("allow") == Some(&Value::Bool(true)) {
        return Ok(RegoDecision::Allow);
    }
    if let Some(reason) = out.get("deny").and_then(Value::as_str) {
        return Ok(RegoDecision::Deny(reason.to_string()));
    }
    if let Some(r) = out.get("require_approval") {
        let approvers: Vec<String> = r
            .get("approvers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let count = r.get("count").and_then(Value::as_u64).unwrap_or(1).clamp(1, 100) as u32;
        let reason = r.get("reason").and_then(Value::as_str).unwrap_or("policy").to_string();
        return Ok(RegoDecision::RequireApproval { approvers, count, reason });
    }
    Err(format!(
        "{DECISION_RULE} must be {{\"allow\": true}}, {{\"deny\": REASON}} or {{\"require_approval\": {{…}}}}, not {out}"
    ))
}

/// Shadow (record only) or enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Evaluate and audit what would be decided; the built-in rules decide.
    Shadow,
    /// The Rego policy decides.
    Enforce,
}

/// The policy in force for an install, compiled.
#[derive(Debug, Clone)]
pub struct Active {
    /// Row id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Shadow or enforce.
    pub mode: Mode,
    /// Whether an evaluation error lets the job through (`open`) or refuses it (`closed`).
    pub fail_open: bool,
    /// The compiled policy; `Err` when the stored source does not compile (treated as an evaluation error).
    pub policy: Result<Arc<RegoPolicy>, String>,
}

/// A compiled policy, or why its stored source does not compile.
type Compiled = Result<Arc<RegoPolicy>, String>;

/// Compiled policies by row, recompiled when a row changes (by `updated_at`).
#[derive(Debug, Default)]
pub struct Cache {
    compiled: Mutex<HashMap<Uuid, (DateTime<Utc>, Compiled)>>,
}

impl Cache {
    /// The policy for `install` (its own, else the global one), if any.
    ///
    /// # Errors
    /// Store failures.
    pub async fn active(&self, pool: &PgPool, install: Option<Uuid>) -> Result<Option<Active>, sqlx::Error> {
        let row: Option<(Uuid, String, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, name, mode, on_error, updated_at FROM rego_policies
             WHERE install_id = $1 OR install_id IS NULL ORDER BY install_id NULLS LAST LIMIT 1",
        )
        .bind(install)
        .fetch_optional(pool)
        .await?;
        let Some((id, name, mode, on_error, updated)) = row else { return Ok(None) };
        let cached = {
            let map = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.get(&id).filter(|(at, _)| *at == updated).map(|(_, p)| p.clone())
        };
        let policy = match cached {
            Some(p) => p,
            None => {
                let source: String = sqlx::query_scalar("SELECT source FROM rego_policies WHERE id = $1")
                    .bind(id)
                    .fetch_one(pool)
                    .await?;
                let compiled = RegoPolicy::compile(&name, &source).map(Arc::new);
                self.compiled
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id, (updated, compiled.clone()));
                compiled
            }
        };
        let mode = if mode == "enforce" { Mode::Enforce } else { Mode::Shadow };
        Ok(Some(Active { id, name, mode, fail_open: on_error == "open", policy }))
    }
}

/// What the policy sees about a request.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// Requester (platform user id or token name).
    pub user: &'a str,
    /// Install.
    pub install: Option<Uuid>,
    /// `chat`, `api`, `webhook`, `console`.
    pub source: &'a str,
    /// Roles where they asked (empty for API tokens).
    pub roles: Vec<&'a str>,
    /// Channel id, when known.
    pub channel: Option<String>,
    /// The command (`run`).
    pub command: &'a str,
    /// The canonical job spec ([`crate::approvals::canonical_spec`]).
    pub job: Value,
    /// Now.
    pub time: DateTime<Utc>,
}

impl Input<'_> {
    /// The JSON `input` document.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "principal": { "id": self.user, "user": self.user, "install": self.install, "source": self.source },
            "roles": self.roles,
            "channel": self.channel,
            "command": self.command,
            "job": self.job,
            "time": self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "hour_utc": self.time.hour(),
            "weekday": self.time.weekday().to_string().to_lowercase(),
        })
    }
}

/// Imports (creates or replaces) the Rego policy of `install` (`None`: global), after compiling it; audited as
/// `policy.import` with the mode and error behaviour. Importing the policy as it is stored changes nothing.
///
/// # Errors
/// The compile error (with file and line), or a store failure (as text).
pub async fn import(
    pool: &PgPool,
    actor: &str,
    install: Option<Uuid>,
    name: &str,
    source: &str,
    mode: Mode,
    fail_open: bool,
) -> Result<(), String> {
    RegoPolicy::compile(name, source)?;
    let store = |e: sqlx::Error| format!("storing the policy failed: {e}");
    let mut tx = pool.begin().await.map_err(store)?;
    let policy = Stored { install, name, source, mode, fail_open };
    store_compiled(&mut tx, actor, &policy).await.map_err(store)?;
    tx.commit().await.map_err(store)
}

/// A compiled policy as it is stored: for [`store_compiled`].
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// Its install (`None`: global).
    pub install: Option<Uuid>,
    /// Its name (the file it came from).
    pub name: &'a str,
    /// The Rego source, already compiled once by the caller.
    pub source: &'a str,
    /// Shadow or enforce.
    pub mode: Mode,
    /// Fail open on evaluation errors.
    pub fail_open: bool,
}

/// Stores `policy` (which the caller has compiled) in `tx` as its install's policy, replacing another and
/// auditing `policy.import`; when the install's stored policy is the same (name, source, mode, on_error), nothing
/// is written. The bootstrap file and [`import`] share it.
///
/// # Errors
/// Store failures.
///
/// Returns whether anything changed.
pub async fn store_compiled(
    tx: &mut sqlx::PgConnection,
    actor: &str,
    policy: &Stored<'_>,
) -> Result<bool, sqlx::Error> {
    let mode_name = if policy.mode == Mode::Enforce { "enforce" } else { "shadow" };
    let on_error = if policy.fail_open { "open" } else { "closed" };
    let same: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rego_policies WHERE install_id IS NOT DISTINCT FROM $1 AND name = $2
                          AND source = $3 AND mode = $4 AND on_error = $5)",
    )
    .bind(policy.install)
    .bind(policy.name)
    .bind(policy.source)
    .bind(mode_name)
    .bind(on_error)
    .fetch_one(&mut *tx)
    .await?;
    if same {
        return Ok(false);
    }
    sqlx::query("DELETE FROM rego_policies WHERE install_id IS NOT DISTINCT FROM $1")
        .bind(policy.install)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO rego_policies (id, install_id, name, source, mode, on_error) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(policy.install)
    .bind(policy.name)
    .bind(policy.source)
    .bind(mode_name)
    .bind(on_error)
    .execute(&mut *tx)
    .await?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(policy.source.as_bytes()));
    let detail = json!({ "install": policy.install, "name": policy.name, "mode": mode_name, "on_error": on_error,
                         "sha256": sha });
    crate::audit::append(&mut *tx, actor, "policy.import", policy.name, &detail).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../docs/examples/policy.rego");

    fn input(roles: &[&str], gpu: bool, network: bool, channel: &str, hour: u32) -> Value {
        let time = DateTime::parse_from_rfc3339(&format!("2026-12-07T{hour:02}:30:00Z")).expect("time").to_utc();
        let job =
            json!({ "kind": "sandbox", "template": "t", "gpu": gpu, "network": network, "argv": ["sh", "-c", "x"] });
        Input {
            user: "U1",
            install: None,
            source: "chat",
            roles: roles.to_vec(),
            channel: Some(channel.into()),
            command: "run",
            job,
            time,
        }
        .to_json()
    }

    #[test]
    fn the_example_policy_decides_each_case() {
        let p = RegoPolicy::compile("policy.rego", EXAMPLE).expect("compiles");
        assert_eq!(p.decide(&input(&["member"], false, false, "C1", 12)), Ok(RegoDecision::Allow));
        assert_eq!(
            p.decide(&input(&["viewer"], false, false, "C1", 12)),
            Ok(RegoDecision::Deny("viewers cannot run jobs".into()))
        );
        assert!(matches!(p.decide(&input(&["member"], true, false, "C1", 3)), Ok(RegoDecision::Deny(_))));
        assert_eq!(
            p.decide(&input(&["member"], true, false, "C1", 12)),
            Ok(RegoDecision::RequireApproval {
                approvers: vec!["role:approver".into()],
                count: 2,
                reason: "GPU job by a member".into()
            })
        );
        assert!(matches!(
            p.decide(&input(&["member"], false, true, "CPROD", 12)),
            Ok(RegoDecision::RequireApproval { count: 1, .. })
        ));
        assert_eq!(p.decide(&input(&["admin"], true, false, "C1", 12)), Ok(RegoDecision::Allow));
    }

    #[test]
    fn syntax_errors_name_file_and_line_and_bad_results_are_errors() {
        let e =
            RegoPolicy::compile("team.rego", "package cynode\n\ndecision := {\"allow\": true,,\n").expect_err("bad");
        assert!(e.starts_with("team.rego:3:") && !e.contains('\n'), "one line naming file and line: {e}");
        let e = RegoPolicy::compile("other.rego", "package other\nx := 1\n").expect_err("package");
        assert!(e.contains("package cynode"), "{e}");
        let p = RegoPolicy::compile("p.rego", "package cynode\ndecision := 42\n").expect("compiles");
        assert!(p.decide(&json!({})).expect_err("shape").contains("must be"));
        let p = RegoPolicy::compile("p.rego", "package cynode\ndecision := {\"allow\": true} if input.x == 1\n")
            .expect("compiles");
        assert!(p.decide(&json!({ "x": 2 })).expect_err("undefined").contains("undefined"));
    }
}
