//! `cynode usage`: model tokens per UTC day from `GET /v1/usage`.

use cynode_orchestrator::usage::{UsageBy, UsageReport, UsageRow, thousands};

use super::client::ApiClient;
use crate::cli::{UsageArgs, UsageGroup};

/// Runs `cynode usage`.
///
/// # Errors
/// API failures, phrased for the user.
pub async fn run(args: &UsageArgs, api: &ApiClient) -> anyhow::Result<()> {
    let by = match args.by {
        UsageGroup::Install => UsageBy::Install,
        UsageGroup::Requester => UsageBy::Requester,
        UsageGroup::Channel => UsageBy::Channel,
        UsageGroup::Model => UsageBy::Model,
    };
    let report: UsageReport = api.get(&format!("/v1/usage?days={}&by={}", args.days, by.as_str())).await?;
    if args.client.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    print!("{}", render(&report));
    Ok(())
}

fn n(v: i64) -> String {
    thousands(u64::try_from(v).unwrap_or(0))
}

fn install(r: &UsageRow) -> String {
    match (&r.install_name, r.install_id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "(none)".into(),
    }
}

/// The key columns of a grouping: headers and one row's values.
fn keys(by: UsageBy, r: Option<&UsageRow>) -> Vec<String> {
    let Some(r) = r else {
        return match by {
            UsageBy::Install => vec!["INSTALL".into()],
            UsageBy::Requester => vec!["INSTALL".into(), "REQUESTER".into()],
            UsageBy::Channel => vec!["INSTALL".into(), "CHANNEL".into()],
            UsageBy::Model => vec!["MODEL".into()],
        };
    };
    let or_none = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.into());
    match by {
        UsageBy::Install => vec![install(r)],
        UsageBy::Requester => vec![install(r), or_none(&r.requester, "(none)")],
        UsageBy::Channel => vec![install(r), or_none(&r.channel, "(no channel)")],
        UsageBy::Model => {
            vec![r.model.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "(node default)".into())]
        }
    }
}

/// The report as an aligned table under a title, with a total line.
pub fn render(report: &UsageReport) -> String {
    let days =
        if report.from == report.to { report.from.to_string() } else { format!("{} – {}", report.from, report.to) };
    if report.rows.is_empty() {
        return format!("No model calls recorded for {days} (UTC).\n");
    }
    let key_columns = keys(report.by, None).len();
    let mut lines: Vec<Vec<String>> = Vec::with_capacity(report.rows.len() + 2);
    let mut head = vec!["DAY".to_string()];
    head.extend(keys(report.by, None));
    head.extend(["CALLS", "TOKENS IN", "TOKENS OUT", "TOTAL"].map(String::from));
    lines.push(head);
    let sums = |calls: i64, tin: i64, tout: i64| [n(calls), n(tin), n(tout), n(tin.saturating_add(tout))];
    for r in &report.rows {
        let mut line = vec![r.day.to_string()];
        line.extend(keys(report.by, Some(r)));
        line.extend(sums(r.calls, r.prompt_tokens, r.completion_tokens));
        lines.push(line);
    }
    let t = &report.total;
    let mut total = vec!["TOTAL".to_string()];
    total.extend(std::iter::repeat_n(String::new(), key_columns));
    total.extend(sums(t.calls, t.prompt_tokens, t.completion_tokens));
    lines.push(total);
    let columns = lines[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let numeric = 1 + key_columns;
    let mut out = format!("Model tokens {days} (UTC), by {}:\n", report.by.as_str());
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(
                |(c, v)| {
                    if c >= numeric { format!("{v:>w$}", w = widths[c]) } else { format!("{v:<w$}", w = widths[c]) }
                },
            )
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if report.truncated {
        out.push_str("(more rows matched than were shown; the total covers them all: use --json or fewer --days)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use cynode_orchestrator::usage::{UsageBy, UsageReport, UsageRow, UsageTotal};

    use super::render;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn row(d: &str, install: Option<&str>, requester: &str, tokens_in: i64, tokens_out: i64) -> UsageRow {
        UsageRow {
            day: day(d),
            install_id: None,
            install_name: install.map(String::from),
            requester: Some(requester.into()),
            channel: None,
            model: None,
            calls: 2,
            prompt_tokens: tokens_in,
            completion_tokens: tokens_out,
        }
    }

    #[test]
    fn a_report_is_an_aligned_table_with_a_total() {
        let report = UsageReport {
            from: day("2026-12-05"),
            to: day("2026-12-06"),
            by: UsageBy::Requester,
            rows: vec![
                row("2026-12-06", Some("acme"), "U0123", 120_000, 4_500),
                row("2026-12-05", None, "local-admin", 80, 20),
            ],
            truncated: false,
            total: UsageTotal { calls: 4, prompt_tokens: 120_080, completion_tokens: 4_520 },
        };
        let want = "\
Model tokens 2026-12-05 – 2026-12-06 (UTC), by requester:
DAY         INSTALL  REQUESTER    CALLS  TOKENS IN  TOKENS OUT    TOTAL
2026-12-06  acme     U0123            2    120,000       4,500  124,500
2026-12-05  (none)   local-admin      2         80          20      100
TOTAL                                 4    120,080       4,520  124,600
";
        assert_eq!(render(&report), want);
        let empty = UsageReport { rows: Vec::new(), total: UsageTotal::default(), ..report };
        assert_eq!(render(&empty), "No model calls recorded for 2026-12-05 – 2026-12-06 (UTC).\n");
    }
}
