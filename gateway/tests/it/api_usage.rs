//! `GET /v1/usage` (scoped like every API route: a tenant token sees only its install), `cynode usage` as a
//! real process against `cynode serve`, and the `usage` configuration section.

use std::time::Duration;

use cynode_gateway::config::{Config, Overrides};
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::usage::{Budgets, UsageReport};
use cynode_tests::process::run_to_end;
use cynode_tests::{BinProcess, TestDb};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::api_support::*;
use crate::support::MASTER_KEY;

/// The seeded install `ci` plus an install `other`, with model calls of both (and one without an install) on
/// today's ledger, and one of `ci` ten days ago: `(ci, other)`.
async fn ledger(pool: &PgPool) -> (Uuid, Uuid) {
    let ci = install_id(pool).await;
    let other = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO installs (id, platform, external_id, name, settings) VALUES ($1, 'webhook', 'other', 'other', '{}')",
    )
    .bind(other)
    .execute(pool)
    .await
    .expect("install");
    let conversation = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, 'C-ci', '', '{}')",
    )
    .bind(conversation)
    .bind(ci)
    .execute(pool)
    .await
    .expect("conversation");
    // (install, requester, conversation, tokens in and out, days ago)
    let rows = [
        (Some(ci), "U-ci-1", Some(conversation), [1_000_i64, 200], 0_i32),
        (Some(ci), "U-ci-2", None, [300, 30], 0),
        (Some(other), "U-other", None, [50_000, 5_000], 0),
        (None, "local-admin", None, [7, 1], 0),
        (Some(ci), "U-ci-1", Some(conversation), [9, 9], 10),
    ];
    for (install, requester, conv, [tokens_in, tokens_out], days_ago) in rows {
        sqlx::query(
            "INSERT INTO usage_ledger (job_id, task_id, install_id, requester, conversation_id, model, prompt_tokens,
                                       completion_tokens, day)
             VALUES ($1, $2, $3, $4, $5, 'small', $6, $7, (now() AT TIME ZONE 'UTC')::date - $8)",
        )
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(install)
        .bind(requester)
        .bind(conv)
        .bind(tokens_in)
        .bind(tokens_out)
        .bind(days_ago)
        .execute(pool)
        .await
        .expect("ledger row");
    }
    (ci, other)
}

fn requesters(report: &Value) -> Vec<&str> {
    report["rows"].as_array().expect("rows").iter().map(|r| r["requester"].as_str().unwrap_or("-")).collect()
}

#[tokio::test]
async fn usage_is_reported_per_day_and_a_tenant_token_sees_only_its_install() {
    let api = Api::spawn().await;
    let (ci, other) = ledger(&api.app.db.pool).await;
    let ci_viewer = token(&api.app.db.pool, "ci-viewer", Role::Viewer, Some(ci)).await;
    let other_viewer = token(&api.app.db.pool, "other-viewer", Role::Viewer, Some(other)).await;

    // A tenant token: its install's requesters only, today's rows (the default 7 days) first.
    let (status, body) = api.call("GET", "/v1/usage?by=requester", &ci_viewer, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(requesters(&body), ["U-ci-1", "U-ci-2"]);
    assert_eq!(body["total"], serde_json::json!({ "calls": 2, "prompt_tokens": 1_300, "completion_tokens": 230 }));
    assert!(!body.to_string().contains("U-other") && !body.to_string().contains("local-admin"), "{body}");
    let row = &body["rows"][0];
    assert_eq!((row["install_id"].as_str(), row["install_name"].as_str()), (Some(ci.to_string().as_str()), Some("ci")));
    assert_eq!((row["calls"].as_i64(), row["prompt_tokens"].as_i64()), (Some(1), Some(1_000)));
    let (_, body) = api.call("GET", "/v1/usage", &other_viewer, None).await;
    assert_eq!(body["by"], "install");
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!((rows[0]["install_name"].as_str(), rows[0]["prompt_tokens"].as_i64()), (Some("other"), Some(50_000)));

    // A global token sees every install (and calls without one), biggest first.
    let (_, body) = api.call("GET", "/v1/usage?by=install", &api.admin, None).await;
    let names: Vec<&str> =
        body["rows"].as_array().expect("rows").iter().map(|r| r["install_name"].as_str().unwrap_or("-")).collect();
    assert_eq!(names, ["other", "ci", "-"]);

    // By channel, and a range that reaches the older day.
    let (_, body) = api.call("GET", "/v1/usage?by=channel&days=11", &ci_viewer, None).await;
    let channels: Vec<(&str, &str)> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["day"].as_str().expect("day"), r["channel"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(channels.len(), 3, "{body}");
    assert_eq!((channels[0].1, channels[1].1, channels[2].1), ("C-ci", "-", "C-ci"));
    assert!(channels[0].0 > channels[2].0, "newest day first: {channels:?}");
    let report: UsageReport = serde_json::from_value(body).expect("the documented type");
    assert_eq!(report.total.calls, 3);

    // Bad queries get a clear 400.
    for (query, want) in [
        ("?by=team", "install, requester, channel, model"),
        ("?days=0", "`days` is 1–366"),
        ("?from=last-week", "YYYY-MM-DD"),
        ("?from=2026-12-05&to=2026-12-01", "after"),
    ] {
        let (status, body) = api.call("GET", &format!("/v1/usage{query}"), &ci_viewer, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().expect("message").contains(want), "{query}: {body}");
    }
}

#[tokio::test]
async fn cynode_usage_prints_a_table_or_json_for_the_tokens_install() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let (ci, _) = ledger(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY)];
    let mut serve = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0"], &env);
    let line = serve.wait_for("serving on http://", Duration::from_secs(60)).await;
    let url = line[line.find("http://").expect("url")..].trim().to_string();
    let viewer = token(&db.pool, "ci-viewer", Role::Viewer, Some(ci)).await;
    let cli = [("CYNODE_TOKEN", viewer.as_str()), ("CYNODE_URL", url.as_str())];

    let (code, stdout, stderr) = run_to_end("cynode", &["usage", "--by", "requester"], &cli).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("Model tokens ") && lines[0].ends_with("(UTC), by requester:"), "{stdout}");
    assert!(lines[1].starts_with("DAY") && lines[1].contains("REQUESTER") && lines[1].ends_with("TOTAL"), "{stdout}");
    assert!(lines[2].contains("U-ci-1") && lines[2].contains("1,000") && lines[2].ends_with("1,200"), "{stdout}");
    assert!(lines[3].contains("U-ci-2") && lines[3].ends_with("330"), "{stdout}");
    assert!(lines[4].starts_with("TOTAL") && lines[4].ends_with("1,530"), "{stdout}");
    assert!(!stdout.contains("U-other") && !stdout.contains("50,000"), "{stdout}");

    let (code, stdout, stderr) = run_to_end("cynode", &["usage", "--json", "--days", "11"], &cli).await;
    assert_eq!(code, 0, "{stderr}");
    let report: UsageReport = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!((report.rows.len(), report.total.calls, report.total.prompt_tokens), (2, 3, 1_309));

    let (code, stdout, _) = run_to_end("cynode", &["usage", "--days", "1", "--by", "model"], &cli).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("MODEL") && stdout.contains("small"), "{stdout}");

    let (code, _, stderr) = run_to_end("cynode", &["usage", "--by", "team"], &cli).await;
    assert_eq!(code, 2, "a usage error");
    assert!(stderr.contains("install") && stderr.contains("requester"), "{stderr}");
    let (code, _, stderr) = run_to_end("cynode", &["usage", "--days", "0"], &cli).await;
    assert_eq!(code, 2, "{stderr}");

    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0));
}

#[test]
fn budgets_are_configured_in_the_usage_section() {
    let load = |pairs: &[(&str, &str)]| {
        let env = pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string()));
        Config::load(None, env, &Overrides::default())
    };
    let c = load(&[]).expect("defaults");
    assert_eq!(c.core_settings().commands.usage, Budgets::default(), "unlimited unless configured");
    let c = load(&[
        ("CYNODE__USAGE__DAILY_TOKENS_PER_INSTALL", "200000"),
        ("CYNODE__USAGE__DAILY_TOKENS_PER_REQUESTER", "5000"),
    ])
    .expect("budgets");
    let want = Budgets { daily_tokens_per_install: 200_000, daily_tokens_per_requester: 5_000 };
    assert_eq!(c.core_settings().commands.usage, want);
    let err = load(&[("CYNODE__USAGE__DAILY_TOKENS", "5")]).expect_err("unknown key").to_string();
    assert!(err.contains("daily_tokens") && err.contains("CYNODE__USAGE__DAILY_TOKENS"), "{err}");
    let err = load(&[("CYNODE__USAGE__DAILY_TOKENS_PER_INSTALL", "-1")]).expect_err("negative").to_string();
    assert!(err.contains("usage.daily_tokens_per_install"), "{err}");
}
