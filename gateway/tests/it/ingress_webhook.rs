//! Generic webhooks over a real socket: GitHub, Standard Webhooks and plain HMAC endpoints.

use cynode_adapters::Clock as _;
use cynode_adapters::webhook::{self, Secret};
use cynode_orchestrator::inbound::prune_replay_keys;
use serde_json::{Value, json};

use crate::ingress_support::{HMAC_SECRET, IngressApp, github_signature, standard_signature};

async fn github(app: &IngressApp, endpoint: &str, body: &str, delivery: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/hooks/{endpoint}")))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", github_signature(body.as_bytes()))
        .body(body.to_string())
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn a_github_delivery_is_recorded_and_its_command_runs() {
    let app = IngressApp::spawn().await;
    let r = github(&app, "gh", r#"{"ref":"refs/heads/main","command":"run make test"}"#, "d-1").await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["status"], "accepted");
    let task: uuid::Uuid = v["task_id"].as_str().expect("task id").parse().expect("uuid");
    let (state, _) = app.interpreted(task).await;
    assert_eq!(state, "queued");
    let (source, requester, args): (String, String, Value) =
        sqlx::query_as("SELECT source, requester, args FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_one(&app.db.pool)
            .await
            .expect("task");
    assert_eq!((source.as_str(), requester.as_str()), ("webhook", "gh"));
    assert_eq!(args["command"], "make test");

    // The same delivery again: 200, nothing new.
    let r = github(&app, "gh", r#"{"ref":"refs/heads/main","command":"run make test"}"#, "d-1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["status"], "duplicate");
    assert_eq!(app.stored().await, (1, 1, 1));

    // A payload without a command is only recorded.
    let r = github(&app, "gh", r#"{"ref":"refs/heads/dev"}"#, "d-2").await;
    assert_eq!(r.status(), 202);
    let state: String = sqlx::query_scalar(
        "SELECT t.state FROM tasks t JOIN inbound_events e ON e.id = t.inbound_id WHERE e.delivery_id = 'd-2'",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("state");
    assert_eq!(state, "answered");
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 1);
}

/// `X-GitHub-Delivery` is not signed: a captured body sent again under a fresh delivery id is a duplicate
/// within the replay window, whatever the id; after the window the same body is new again.
#[tokio::test]
async fn a_github_body_replayed_under_a_new_delivery_id_is_a_duplicate_within_the_window() {
    let app = IngressApp::spawn().await;
    let body = r#"{"ref":"refs/heads/main","command":"run make deploy"}"#;
    assert_eq!(github(&app, "gh", body, "d-1").await.status(), 202);
    let r = github(&app, "gh", body, "forged-d-2").await;
    assert_eq!(r.status(), 200, "a replay with a new delivery id");
    assert_eq!(r.json::<Value>().await.expect("json")["status"], "duplicate");
    assert_eq!(app.stored().await, (1, 1, 1), "nothing recorded for the replay");
    assert_eq!(app.rejected("webhook", "duplicate"), 1);

    // Another body is new; the same body on another endpoint is its own matter.
    assert_eq!(github(&app, "gh", r#"{"ref":"refs/heads/dev"}"#, "d-3").await.status(), 202);
    assert_eq!(github(&app, "limited", body, "d-4").await.status(), 202);

    // Past the window (24 h by default) the body counts as new again.
    sqlx::query("UPDATE inbound_replay_keys SET seen_at = seen_at - interval '25 hours'")
        .execute(&app.db.pool)
        .await
        .expect("age the keys");
    assert_eq!(github(&app, "gh", body, "d-5").await.status(), 202);
    assert_eq!(github(&app, "gh", body, "d-6").await.status(), 200, "and is remembered from then on");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 4);

    // Keys past the window are forgotten (the other two bodies' keys, aged above); the renewed one is kept.
    let window = std::time::Duration::from_secs(24 * 3600);
    assert_eq!(prune_replay_keys(&app.db.pool, window).await.expect("prune"), 2);
    assert_eq!(app.count("SELECT count(*) FROM inbound_replay_keys").await, 1);
}

/// Copies of one body racing in under different delivery ids (in one group-commit batch or in several):
/// exactly one is new.
#[tokio::test]
async fn racing_replays_of_one_github_body_record_it_once() {
    let app = IngressApp::spawn().await;
    let body = r#"{"ref":"refs/heads/main","after":"race"}"#;
    let sends = (0..12).map(|i| {
        let app = &app;
        async move { github(app, "gh", body, &format!("race-{i}")).await.status().as_u16() }
    });
    let mut codes = futures_util::future::join_all(sends).await;
    codes.sort_unstable();
    assert_eq!(codes, [[200; 11].as_slice(), &[202]].concat(), "{codes:?}");
    assert_eq!(app.stored().await.0, 1);
}

/// Standard Webhooks sign their `webhook-id`, so the same body under two signed ids is two deliveries.
#[tokio::test]
async fn standard_webhooks_with_the_same_body_and_two_signed_ids_are_two_deliveries() {
    let app = IngressApp::spawn().await;
    let body = br#"{"type":"deploy"}"#;
    let now = app.clock.now_unix();
    for id in ["msg_one", "msg_two"] {
        let r = app
            .client
            .post(app.url("/hooks/std"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", standard_signature(id, now, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 202, "{id}");
    }
    assert_eq!(app.count("SELECT count(*) FROM inbound_replay_keys").await, 0);
}

#[tokio::test]
async fn standard_webhooks_use_the_official_vector_and_dedupe_on_webhook_id() {
    let app = IngressApp::spawn().await;
    // The official test vector was signed at 1614265330.
    let clock = app.clock.clone();
    clock.set(1_614_265_330);
    let send = |sig: &str, ts: i64| {
        app.client
            .post(app.url("/hooks/std"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig.to_string())
            .body(r#"{"test": 2432232314}"#)
            .send()
    };
    let official = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let rotated = format!("v1,bm90IGEgcmVhbCBzaWduYXR1cmUgYXQgYWxsIQ== {official}");
    assert_eq!(send(&rotated, 1_614_265_330).await.expect("post").status(), 202);
    assert_eq!(send(official, 1_614_265_330).await.expect("post").status(), 200, "same webhook-id");
    let id: String =
        sqlx::query_scalar("SELECT delivery_id FROM inbound_events").fetch_one(&app.db.pool).await.expect("id");
    assert_eq!(id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
    clock.advance(301);
    assert_eq!(send(official, 1_614_265_330).await.expect("post").status(), 401, "outside ±5 min");
    assert_eq!(app.rejected("webhook", "stale_timestamp"), 1);
    let fresh = standard_signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_700, br#"{"test": 2432232314}"#);
    assert_eq!(send(&fresh, 1_614_265_700).await.expect("post").status(), 200, "re-signed, still a duplicate");
}

#[tokio::test]
async fn hmac_endpoints_check_their_configured_header() {
    let app = IngressApp::spawn().await;
    let body = r#"{"event":"deploy","command":"status"}"#;
    // The plain scheme: hex HMAC-SHA256 of the body, without GitHub's `sha256=` prefix.
    let secret = Secret::new(HMAC_SECRET).expect("secret");
    let tag = webhook::github_signature(&secret, body.as_bytes()).trim_start_matches("sha256=").to_string();
    let send = |header: &'static str, value: String| {
        app.client
            .post(app.url("/hooks/plain"))
            .header("content-type", "application/json")
            .header(header, value)
            .body(body)
            .send()
    };
    assert_eq!(send("x-signature", tag.clone()).await.expect("post").status(), 202);
    assert_eq!(send("x-other", tag.clone()).await.expect("post").status(), 401);
    assert_eq!(send("x-signature", format!("{}00", &tag[..62])).await.expect("post").status(), 401);
    assert_eq!(app.rejected("webhook", "missing_header"), 1);
    assert_eq!(app.rejected("webhook", "bad_signature"), 1);
    let event: String =
        sqlx::query_scalar("SELECT args->>'event' FROM tasks").fetch_one(&app.db.pool).await.expect("event");
    assert_eq!(event, "deploy");
}

#[tokio::test]
async fn bad_webhooks_are_refused() {
    let app = IngressApp::spawn().await;
    let body = r#"{"ref":"main"}"#;
    let post = |endpoint: &str, ct: &str, sig: String, body: String| {
        app.client
            .post(app.url(&format!("/hooks/{endpoint}")))
            .header("content-type", ct.to_string())
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
    };
    let r = post("gh", "application/json", github_signature(b"{}"), body.into()).await.expect("post");
    assert_eq!(r.status(), 401);
    let r = post("nobody", "application/json", github_signature(body.as_bytes()), body.into()).await.expect("post");
    assert_eq!(r.status(), 401);
    let r = post("gh", "text/xml", github_signature(body.as_bytes()), body.into()).await.expect("post");
    assert_eq!(r.status(), 415);
    let truncated = &body[..5];
    let r =
        post("gh", "application/json", github_signature(truncated.as_bytes()), truncated.into()).await.expect("post");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("truncated"));
    assert_eq!(app.stored().await, (0, 0, 0));
    assert_eq!(app.rejected("webhook", "unknown_install"), 1);
    assert_eq!(app.rejected("webhook", "invalid_json"), 1);
}

#[tokio::test]
async fn an_endpoint_over_its_limit_gets_429_with_retry_after() {
    let app = IngressApp::spawn().await;
    for i in 0..2 {
        let r = github(&app, "limited", &json!({ "n": i }).to_string(), &format!("l-{i}")).await;
        assert_eq!(r.status(), 202);
    }
    let r = github(&app, "limited", r#"{"n":3}"#, "l-3").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "rate_limited");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
    assert_eq!(app.rejected("webhook", "rate_limited"), 1);
}
