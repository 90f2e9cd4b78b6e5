//! Token usage: the ledger of model calls and daily budgets.
//!
//! - **Ledger.** Every inference job that reaches a final state with `usage` in its result gets one
//!   `usage_ledger` row (prompt and completion tokens), written by a trigger in the transaction that records
//!   the result, so every path (agent steps, `ask`, the reaper, a cancel) is counted once and nothing is
//!   counted for sandbox jobs or calls whose server reported no usage. A row names the job's task, its agent
//!   turn, install, requester, conversation and model, and its UTC day. [`report`] reads it per day.
//! - **Budgets.** [`Budgets`] caps the tokens (prompt + completion) an install, and a requester within an
//!   install, may use per UTC day; an install's bootstrap entry may override both ([`UsageOverrides`]).
//!   [`over_budget`] is asked before each model call and answers with the sentence to show instead.

mod report;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

pub use report::{ReportQuery, UsageBy, UsageReport, UsageRow, UsageTotal, report};

/// Daily token budgets (prompt + completion tokens per UTC day; 0 = unlimited). The `usage` section of the
/// gateway configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Tokens one install may use per UTC day (0: unlimited). An install's `usage.daily_tokens` in the
    /// bootstrap file overrides it.
    #[serde(default)]
    pub daily_tokens_per_install: u64,
    /// Tokens one requester (a user of one install) may use per UTC day (0: unlimited). An install's
    /// `usage.daily_tokens_per_requester` in the bootstrap file overrides it.
    #[serde(default)]
    pub daily_tokens_per_requester: u64,
}

/// Per-install budget overrides, stored as `settings.usage` (set with `usage:` on an install in the bootstrap
/// file). Absent fields keep the configured budget; 0 makes it unlimited for this install.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsageOverrides {
    /// Tokens this install may use per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_tokens: Option<u64>,
    /// Tokens each requester of this install may use per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_tokens_per_requester: Option<u64>,
}

/// Today's use of an install and of one requester, with the install's overrides.
const TODAY: &str = "
SELECT
    (SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage_ledger
     WHERE day = (now() AT TIME ZONE 'UTC')::date AND install_id = $1),
    (SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage_ledger
     WHERE day = (now() AT TIME ZONE 'UTC')::date
       AND (install_id = $1 OR ($1::uuid IS NULL AND install_id IS NULL)) AND requester = $2),
    (SELECT settings->'usage' FROM installs WHERE id = $1)";

/// Whether `install` or `requester` (a user of that install) used its tokens for today (UTC): `Some` sentence
/// for the user when a budget is spent, `None` when a model call may go ahead. The install's budget is
/// checked first; without an install (the local console, a global API token) only the requester's applies.
/// Only finished calls count: calls still running when the budget runs out may take the day's total past it.
///
/// Call it before every model call, e.g. before queueing an agent's model step:
/// `if let Some(text) = usage::over_budget(pool, &settings.usage, turn.install_id, &turn.requester).await? { … }`.
///
/// # Errors
/// Store failures.
pub async fn over_budget(
    pool: &PgPool,
    budgets: &Budgets,
    install: Option<Uuid>,
    requester: &str,
) -> Result<Option<String>, sqlx::Error> {
    if budgets.daily_tokens_per_install == 0 && budgets.daily_tokens_per_requester == 0 && install.is_none() {
        return Ok(None);
    }
    let (install_used, requester_used, overrides): (i64, i64, Option<serde_json::Value>) =
        sqlx::query_as(TODAY).bind(install).bind(requester).fetch_one(pool).await?;
    let overrides: UsageOverrides = overrides.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let used = |n: i64| u64::try_from(n).unwrap_or(0);
    let install_limit = overrides.daily_tokens.unwrap_or(budgets.daily_tokens_per_install);
    if install.is_some() && install_limit > 0 && used(install_used) >= install_limit {
        let key = match overrides.daily_tokens {
            Some(_) => "`usage.daily_tokens` of this install in the bootstrap file",
            None => "`usage.daily_tokens_per_install`",
        };
        return Ok(Some(format!(
            "This install used its {} tokens for today; budgets reset at 00:00 UTC — ask an admin to raise {key}.",
            thousands(install_limit)
        )));
    }
    let requester_limit = overrides.daily_tokens_per_requester.unwrap_or(budgets.daily_tokens_per_requester);
    if requester_limit > 0 && used(requester_used) >= requester_limit {
        let key = match overrides.daily_tokens_per_requester {
            Some(_) => "`usage.daily_tokens_per_requester` of this install in the bootstrap file",
            None => "`usage.daily_tokens_per_requester`",
        };
        return Ok(Some(format!(
            "You used your {} tokens for today; budgets reset at 00:00 UTC — ask an admin to raise {key}.",
            thousands(requester_limit)
        )));
    }
    Ok(None)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(200_000), "200,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
