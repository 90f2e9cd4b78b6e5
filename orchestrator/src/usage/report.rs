//! Reading the usage ledger: tokens per UTC day, grouped by install, requester, channel or model, within an
//! install (a tenant's view) or across all of them.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// What the rows of a report are grouped by (besides the day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageBy {
    /// Per install.
    #[default]
    Install,
    /// Per requester of an install.
    Requester,
    /// Per channel of an install (all its threads together).
    Channel,
    /// Per model.
    Model,
}

impl UsageBy {
    /// Every grouping, as named in the API and CLI.
    pub const ALL: [Self; 4] = [Self::Install, Self::Requester, Self::Channel, Self::Model];

    /// Its name: `install`, `requester`, `channel` or `model`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Requester => "requester",
            Self::Channel => "channel",
            Self::Model => "model",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// A report's range and grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportQuery {
    /// First UTC day, included.
    pub from: NaiveDate,
    /// Last UTC day, included.
    pub to: NaiveDate,
    /// Grouping.
    pub by: UsageBy,
    /// Only this install's calls (a tenant's view); `None` sees every install.
    pub install_id: Option<Uuid>,
    /// The most rows returned (newest days first, then the biggest users).
    pub limit: i64,
}

/// Tokens of one day and group. Fields that are not part of the grouping are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct UsageRow {
    /// The UTC day.
    pub day: NaiveDate,
    /// The install (grouping `install`, `requester`, `channel`; `null` for calls without one: the local
    /// console, global API tokens).
    pub install_id: Option<Uuid>,
    /// The install's name.
    pub install_name: Option<String>,
    /// The requester (grouping `requester`).
    pub requester: Option<String>,
    /// The channel (grouping `channel`; `null` for calls outside a chat channel).
    pub channel: Option<String>,
    /// The model asked for (grouping `model`; `""`: the node's default).
    pub model: Option<String>,
    /// Model calls.
    pub calls: i64,
    /// Prompt tokens (in).
    pub prompt_tokens: i64,
    /// Completion tokens (out).
    pub completion_tokens: i64,
}

/// The sums over a whole report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct UsageTotal {
    /// Model calls.
    pub calls: i64,
    /// Prompt tokens (in).
    pub prompt_tokens: i64,
    /// Completion tokens (out).
    pub completion_tokens: i64,
}

/// A report: its range and grouping, rows and totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// First UTC day, included.
    pub from: NaiveDate,
    /// Last UTC day, included.
    pub to: NaiveDate,
    /// Grouping.
    pub by: UsageBy,
    /// Per day (newest first) and group (most tokens first).
    pub rows: Vec<UsageRow>,
    /// More rows matched than were returned.
    pub truncated: bool,
    /// Sums over the whole range (all rows, returned or not).
    pub total: UsageTotal,
}

/// Rows of a report. The grouping is a bound parameter: the keys that are not part of it are `NULL`, so one
/// statement serves every grouping.
const ROWS: &str = "
SELECT g.day, g.install_id, i.name AS install_name, g.requester, g.channel, g.model, g.calls, g.prompt_tokens,
       g.completion_tokens
FROM (
    SELECT l.day,
           CASE WHEN $3 IN ('install', 'requester', 'channel') THEN l.install_id END AS install_id,
           CASE WHEN $3 = 'requester' THEN l.requester END AS requester,
           CASE WHEN $3 = 'channel' THEN c.channel END AS channel,
           CASE WHEN $3 = 'model' THEN l.model END AS model,
           count(*) AS calls, sum(l.prompt_tokens)::bigint AS prompt_tokens,
           sum(l.completion_tokens)::bigint AS completion_tokens
    FROM usage_ledger l LEFT JOIN conversations c ON c.id = l.conversation_id
    WHERE l.day BETWEEN $1 AND $2 AND ($4::uuid IS NULL OR l.install_id = $4)
    GROUP BY 1, 2, 3, 4, 5
) g LEFT JOIN installs i ON i.id = g.install_id
ORDER BY g.day DESC, g.prompt_tokens + g.completion_tokens DESC, g.install_id, g.requester, g.channel, g.model
LIMIT $5";

const TOTAL: &str = "
SELECT count(*) AS calls, coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
       coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens
FROM usage_ledger WHERE day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR install_id = $3)";

/// The tokens of `q`'s days, grouped.
///
/// # Errors
/// Store failures.
pub async fn report(pool: &PgPool, q: &ReportQuery) -> Result<UsageReport, sqlx::Error> {
    let limit = q.limit.max(1);
    let mut rows: Vec<UsageRow> = sqlx::query_as(ROWS)
        .bind(q.from)
        .bind(q.to)
        .bind(q.by.as_str())
        .bind(q.install_id)
        .bind(limit + 1)
        .fetch_all(pool)
        .await?;
    let truncated = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let total: UsageTotal = sqlx::query_as(TOTAL).bind(q.from).bind(q.to).bind(q.install_id).fetch_one(pool).await?;
    Ok(UsageReport { from: q.from, to: q.to, by: q.by, rows, truncated, total })
}
