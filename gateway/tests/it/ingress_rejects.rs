//! Every bad request the issue lists: the right status, no detail in 401 bodies, a metric, nothing stored.

use crate::ingress_support::{IngressApp, SLACK_APP, SLACK_TEAM, mention, slack_signature};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    timestamp: Option<i64>,
    signature: Option<String>,
    status: u16,
    reason: &'static str,
}

impl Case {
    fn signed(name: &'static str, path: &'static str, ct: &'static str, body: String, ts: i64) -> Self {
        let signature = Some(slack_signature(ts, body.as_bytes()));
        Self { name, path, content_type: Some(ct), body, timestamp: Some(ts), signature, status: 200, reason: "" }
    }

    fn expect(mut self, status: u16, reason: &'static str) -> Self {
        self.status = status;
        self.reason = reason;
        self
    }
}

#[tokio::test]
async fn bad_slack_requests_get_the_right_status_a_metric_and_store_nothing() {
    let app = IngressApp::spawn().await;
    let now = app.now();
    let body = mention("EvBAD", SLACK_TEAM, "U1", "run echo hi", None);
    let other = mention("EvOTHER", SLACK_TEAM, "U1", "run echo hi", None);
    let cases = vec![
        Case {
            signature: Some(format!("v0={}", "0".repeat(64))),
            ..Case::signed("forged", "/slack/events", JSON, body.clone(), now)
        }
        .expect(401, "bad_signature"),
        Case {
            signature: Some(slack_signature(now, other.as_bytes())),
            ..Case::signed("other body", "/slack/events", JSON, body.clone(), now)
        }
        .expect(401, "bad_signature"),
        Case::signed("stale", "/slack/events", JSON, body.clone(), now - 301).expect(401, "stale_timestamp"),
        Case::signed("future", "/slack/events", JSON, body.clone(), now + 301).expect(401, "future_timestamp"),
        Case { signature: None, ..Case::signed("no signature", "/slack/events", JSON, body.clone(), now) }
            .expect(401, "missing_header"),
        Case { timestamp: None, ..Case::signed("no timestamp", "/slack/events", JSON, body.clone(), now) }
            .expect(401, "missing_header"),
        Case {
            signature: Some("sha256=abc".into()),
            ..Case::signed("garbled signature", "/slack/events", JSON, body.clone(), now)
        }
        .expect(401, "bad_header"),
        Case::signed("wrong content type", "/slack/events", "text/plain", body.clone(), now)
            .expect(415, "unsupported_content_type"),
        Case::signed("json to the form endpoint", "/slack/commands", JSON, body.clone(), now)
            .expect(415, "unsupported_content_type"),
        Case::signed("truncated json", "/slack/events", JSON, body[..body.len() - 10].to_string(), now)
            .expect(400, "invalid_json"),
        Case::signed("not json", "/slack/events", JSON, "{\"type\": event_callback}".into(), now)
            .expect(400, "invalid_json"),
        Case::signed("missing event id", "/slack/events", JSON, body.replace("\"event_id\":\"EvBAD\",", ""), now)
            .expect(400, "missing_field"),
        Case::signed("malformed form", "/slack/commands", FORM, format!("team_id={SLACK_TEAM}&text=%zz"), now)
            .expect(400, "invalid_form"),
        Case::signed(
            "truncated form payload",
            "/slack/interactions",
            FORM,
            format!("team_id={SLACK_TEAM}&payload=%7B%22type%22"),
            now,
        )
        .expect(400, "invalid_json"),
        Case::signed(
            "unknown install",
            "/slack/events",
            JSON,
            unknown_app(mention("EvX", "TNOBODY", "U1", "hi", None)),
            now,
        )
        .expect(401, "unknown_install"),
        Case::signed("disabled install", "/slack/events", JSON, mention("EvY", "TDISABLED", "U1", "hi", None), now)
            .expect(401, "disabled_install"),
    ];
    for case in cases {
        let before = app.rejected("slack", case.reason);
        let mut req = app.client.post(app.url(case.path)).body(case.body.clone());
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(ts) = case.timestamp {
            req = req.header("x-slack-request-timestamp", ts.to_string());
        }
        if let Some(sig) = &case.signature {
            req = req.header("x-slack-signature", sig);
        }
        let r = req.send().await.expect("post");
        assert_eq!(r.status().as_u16(), case.status, "{}", case.name);
        let text = r.text().await.expect("body");
        if case.status == 401 {
            assert_eq!(text, "", "{}: a 401 carries no detail", case.name);
        } else {
            let error: serde_json::Value = serde_json::from_str(&text).expect("json error");
            assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: {text}", case.name);
            assert!(
                !text.contains("echo hi") && !text.contains("event_callback"),
                "{}: echoes the body: {text}",
                case.name
            );
        }
        assert_eq!(app.rejected("slack", case.reason), before + 1, "{}: metric {}", case.name, case.reason);
        assert_eq!(app.stored().await, (0, 0, 0), "{}: nothing stored", case.name);
    }
    // The refusals (401s) are in the audit log, counted per reason (the flusher may have split them in time).
    app.state.ingress.refusals.flush(&app.db.pool).await.expect("flush");
    cynode_orchestrator::audit::flush(&app.db.pool).await.expect("link the audit entries");
    let rows: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT subject, detail FROM audit_log WHERE action = 'ingress.refused' ORDER BY seq")
            .fetch_all(&app.db.pool)
            .await
            .expect("audit");
    let mut counted = std::collections::BTreeMap::<String, u64>::new();
    for (platform, d) in rows {
        assert_eq!(platform, "slack");
        *counted.entry(d["reason"].as_str().expect("reason").to_string()).or_default() +=
            d["count"].as_u64().expect("n");
    }
    let want: std::collections::BTreeMap<String, u64> = [
        ("bad_header", 1),
        ("bad_signature", 2),
        ("disabled_install", 1),
        ("future_timestamp", 1),
        ("missing_header", 2),
        ("stale_timestamp", 1),
        ("unknown_install", 1),
    ]
    .into_iter()
    .map(|(r, n)| (r.to_string(), n))
    .collect();
    assert_eq!(counted, want);
    assert_eq!(cynode_orchestrator::audit::verify_chain(&app.db.pool).await.expect("verify"), None);
}

#[tokio::test]
async fn a_valid_request_replayed_after_the_window_is_refused() {
    let app = IngressApp::spawn().await;
    let ts = app.now();
    let body = mention("EvREPLAY", SLACK_TEAM, "U1", "help", None);
    assert_eq!(app.slack("/slack/events", JSON, &body, ts).await.status(), 200);
    // Within the window, a replay is a duplicate: acknowledged, nothing new.
    app.clock.advance(300);
    assert_eq!(app.slack("/slack/events", JSON, &body, ts).await.status(), 200);
    assert_eq!(app.rejected("slack", "duplicate"), 1);
    // After it, refused before anything is read.
    app.clock.advance(1);
    let r = app.slack("/slack/events", JSON, &body, ts).await;
    assert_eq!(r.status(), 401);
    assert_eq!(app.rejected("slack", "stale_timestamp"), 1);
    assert_eq!(app.stored().await, (1, 1, 1));
}

#[tokio::test]
async fn huge_bodies_are_413_and_name_the_limit() {
    let app = IngressApp::spawn().await;
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 1));
    let r = app.slack("/slack/events", JSON, &body, app.now()).await;
    assert_eq!(r.status(), 413);
    let text = r.text().await.expect("body");
    assert!(text.contains("larger than the limit of 1048576 bytes"), "{text}");
    assert_eq!(app.rejected("slack", "payload_too_large"), 1);

    // Without a Content-Length (chunked), the limit applies while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..20).map(|_| Ok(vec![b'x'; 64 * 1024])).collect();
    let r = app
        .client
        .post(app.url("/hooks/gh"))
        .header("content-type", JSON)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("body").contains("1048576"));
    assert_eq!(app.rejected("webhook", "payload_too_large"), 1);
    assert_eq!(app.stored().await, (0, 0, 0));
}

#[tokio::test]
async fn deeply_nested_json_is_refused_after_verification() {
    let app = IngressApp::spawn().await;
    let deep = format!("{{\"team_id\":\"{SLACK_TEAM}\",\"x\":{}1{}}}", "[".repeat(100), "]".repeat(100));
    let r = app.slack("/slack/events", JSON, &deep, app.now()).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("nests deeper than 64"));
    assert_eq!(app.rejected("slack", "too_deep"), 1);
}

/// The same request from an app no install knows (a known `api_app_id` would find its install by app).
fn unknown_app(body: String) -> String {
    body.replace(SLACK_APP, "ANOBODY")
}
