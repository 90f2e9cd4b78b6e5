//! `GET /v1/usage`: model tokens per UTC day from the usage ledger, grouped by install, requester, channel or
//! model. A token limited to an install sees only that install's calls.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{Days, NaiveDate, Utc};
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::usage::{self, ReportQuery, UsageBy, UsageReport};
use serde::Deserialize;

use super::auth::Caller;
use super::model::limit_param;
use crate::error::ApiError;
use crate::server::AppState;

/// The longest range one report covers, in days.
pub const MAX_DAYS: u32 = 366;

/// `GET /v1/usage` query. Every field is a string so that a bad value gets a clear 400 of our own.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    days: Option<String>,
    by: Option<String>,
    limit: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn date(name: &str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| bad(format!("`{name}` is a UTC day as YYYY-MM-DD, e.g. 2026-12-06"))),
    }
}

/// The days and grouping a query asks for, with `today` as the default end.
fn range(q: &UsageQuery, today: NaiveDate) -> Result<(NaiveDate, NaiveDate, UsageBy), ApiError> {
    let by = match q.by.as_deref() {
        None | Some("") => UsageBy::default(),
        Some(b) => UsageBy::parse(b).ok_or_else(|| bad("`by` is one of install, requester, channel, model"))?,
    };
    let days = match q.days.as_deref() {
        None | Some("") => None,
        Some(d) => Some(
            d.parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_DAYS).contains(n))
                .ok_or_else(|| bad(format!("`days` is 1–{MAX_DAYS}")))?,
        ),
    };
    let from = date("from", q.from.as_deref())?;
    if days.is_some() && from.is_some() {
        return Err(bad("give either `days` or `from`, not both"));
    }
    let to = date("to", q.to.as_deref())?.unwrap_or(today);
    let from = match from {
        Some(f) => f,
        None => to.checked_sub_days(Days::new(u64::from(days.unwrap_or(7) - 1))).unwrap_or(to),
    };
    if from > to {
        return Err(bad(format!("`from` ({from}) is after `to` ({to})")));
    }
    if (to - from).num_days() >= i64::from(MAX_DAYS) {
        return Err(bad(format!("a report covers at most {MAX_DAYS} days")));
    }
    Ok((from, to, by))
}

/// Tokens per day and group; a tenant token sees its install only.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    caller.require(Role::Viewer)?;
    let (from, to, by) = range(&q, Utc::now().date_naive())?;
    let limit = i64::from(limit_param(q.limit.as_deref(), 1000, 10_000)?);
    let query = ReportQuery { from, to, by, install_id: caller.scope().install_id, limit };
    Ok(Json(usage::report(&state.pool, &query).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> UsageQuery {
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string());
        UsageQuery { from: get("from"), to: get("to"), days: get("days"), by: get("by"), limit: get("limit") }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn ranges_default_to_the_last_seven_days_by_install() {
        let today = day("2026-12-06");
        assert_eq!(range(&q(&[]), today).expect("ok"), (day("2026-11-30"), today, UsageBy::Install));
        assert_eq!(range(&q(&[("days", "1")]), today).expect("ok"), (today, today, UsageBy::Install));
        let r = range(&q(&[("from", "2026-12-01"), ("to", "2026-12-03"), ("by", "channel")]), today).expect("ok");
        assert_eq!(r, (day("2026-12-01"), day("2026-12-03"), UsageBy::Channel));
    }

    #[test]
    fn bad_ranges_are_refused_with_the_fix() {
        let today = day("2026-12-06");
        let err = |pairs: &[(&str, &str)]| format!("{:?}", range(&q(pairs), today).expect_err("refused"));
        assert!(err(&[("by", "team")]).contains("install, requester, channel, model"));
        assert!(err(&[("days", "0")]).contains("1–366"));
        assert!(err(&[("days", "367")]).contains("1–366"));
        assert!(err(&[("from", "yesterday")]).contains("YYYY-MM-DD"));
        assert!(err(&[("from", "2026-12-05"), ("to", "2026-12-01")]).contains("after"));
        assert!(err(&[("days", "3"), ("from", "2026-12-01")]).contains("either"));
        assert!(err(&[("from", "2020-01-01")]).contains("at most 366 days"));
    }
}
