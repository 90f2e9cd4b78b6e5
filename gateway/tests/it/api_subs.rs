//! Webhook subscriptions through the user API: the whole life cycle against a local receiver that verifies
//! signatures with the independent `standardwebhooks` crate, bad input, roles and tenant scoping.

use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::nodes;
use cynode_protocol::{Capabilities, ExecutorKind, RegisterRequest};
use serde_json::{Value, json};

use crate::api_support::*;
use crate::receiver::{Receiver, settled};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn create(api: &Api, token: &str, body: Value) -> Value {
    let (status, created) = api.call("POST", "/v1/subscriptions", token, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn subscriptions_are_created_tested_rotated_replayed_disabled_and_deleted() {
    let api = Api::spawn().await;
    let rx = Receiver::start().await;
    let body = json!({ "name": "sink", "url": rx.url("sink"), "event_types": ["task.created"] });
    let created = create(&api, &api.op, body).await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    let id = created["subscription"]["id"].as_str().expect("id").to_string();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["subscription"]["enabled"], true);
    assert_eq!(created["subscription"]["install_id"], Value::Null);

    // Read back by id and by name; the secret is never shown again.
    let (status, by_id) = api.call("GET", &format!("/v1/subscriptions/{id}"), &api.op, None).await;
    assert_eq!(status, 200);
    assert_eq!(api.call("GET", "/v1/subscriptions/sink", &api.op, None).await.1, by_id);
    let (_, list) = api.call("GET", "/v1/subscriptions", &api.op, None).await;
    assert_eq!(list["subscriptions"][0], by_id);
    assert!(!list.to_string().contains(&secret) && !by_id.to_string().contains(&secret));

    // A test ping and a real event arrive signed; the delivery records say so.
    let (status, ping) = api.call("POST", "/v1/subscriptions/sink/test", &api.op, None).await;
    assert_eq!(status, 202, "{ping}");
    let ping_id = ping["delivery_id"].as_str().expect("delivery").to_string();
    let task = api.submit(&api.op, "run echo hi").await;
    let hits = rx.wait("ping and task.created", |h| h.len() >= 2).await;
    assert!(hits.iter().all(|h| h.verifies_with(&secret)), "signatures verify independently");
    let mut types: Vec<String> = hits.iter().map(|h| h.event_type()).collect();
    types.sort();
    assert_eq!(types, ["ping", "task.created"]);
    let created_hit = hits.iter().find(|h| h.event_type() == "task.created").expect("task.created");
    assert_eq!(created_hit.json()["data"]["task_id"], task["task_id"]);
    let ping_hit = hits.iter().find(|h| h.event_type() == "ping").expect("ping").clone();
    settled(&api.app.db.pool).await;
    let (_, delivered) = api.call("GET", &format!("/v1/deliveries/{ping_id}"), &api.op, None).await;
    assert_eq!(delivered["state"], "delivered");
    assert_eq!(
        (delivered["msg_id"].as_str(), delivered["last_status"].as_i64()),
        (Some(&*ping_hit.webhook_id()), Some(204))
    );
    let (_, page) = api.call("GET", "/v1/subscriptions/sink/deliveries?limit=1", &api.op, None).await;
    assert_eq!(page["deliveries"].as_array().expect("list").len(), 1);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
    let (_, rest) = api.call("GET", &format!("/v1/subscriptions/sink/deliveries?before={cursor}"), &api.op, None).await;
    assert_eq!(rest["deliveries"].as_array().expect("list").len(), 1, "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);

    // Replaying one delivery resends it with the same webhook-id.
    let (status, again) = api.call("POST", &format!("/v1/deliveries/{ping_id}/replay"), &api.op, None).await;
    assert_eq!(status, 202, "{again}");
    assert_ne!(again["delivery_id"].as_str(), Some(&*ping_id));
    let hits = rx.wait("the replay", |h| h.len() >= 3).await;
    assert_eq!(hits[2].webhook_id(), ping_hit.webhook_id());

    // Rotation: the new secret is returned once; during the grace period both secrets verify.
    let (status, rotated) =
        api.call("POST", "/v1/subscriptions/sink/rotate", &api.op, Some(json!({ "grace_seconds": 3600 }))).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("secret").to_string();
    assert_ne!(new_secret, secret);
    let (_, sub) = api.call("GET", "/v1/subscriptions/sink", &api.op, None).await;
    assert_eq!(sub["rotation_ends_at"], rotated["previous_valid_until"]);
    api.call("POST", "/v1/subscriptions/sink/test", &api.op, None).await;
    let hits = rx.wait("a ping after rotation", |h| h.len() >= 4).await;
    assert!(hits[3].verifies_with(&new_secret) && hits[3].verifies_with(&secret));

    // Range replay: delivered ones only when asked.
    settled(&api.app.db.pool).await;
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, r) = api.call("POST", "/v1/subscriptions/sink/replay", &api.op, Some(json!({ "since": since }))).await;
    assert_eq!((status, r["queued"].as_u64()), (202, Some(0)), "{r}");
    let all = json!({ "since": since, "include_delivered": true });
    let (_, r) = api.call("POST", "/v1/subscriptions/sink/replay", &api.op, Some(all)).await;
    assert_eq!(r["queued"].as_u64(), Some(3), "ping, task.created, second ping (replays are not replayed): {r}");

    // Disable, then enable; changes to event types and URL are validated.
    let (status, off) = api.call("PATCH", "/v1/subscriptions/sink", &api.op, Some(json!({ "enabled": false }))).await;
    assert_eq!((status, off["enabled"].as_bool()), (200, Some(false)), "{off}");
    assert!(off["disabled_reason"].as_str().expect("reason").contains("op"), "{off}");
    let (status, body) = api.call("POST", "/v1/subscriptions/sink/test", &api.op, None).await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    let change = json!({ "enabled": true, "event_types": ["job.finished", "task.finished"] });
    let (status, on) = api.call("PATCH", "/v1/subscriptions/sink", &api.op, Some(change)).await;
    assert_eq!((status, on["enabled"].as_bool()), (200, Some(true)), "{on}");
    assert_eq!(on["event_types"], json!(["job.finished", "task.finished"]));

    // Viewers read but do not manage.
    let viewer = token(&api.app.db.pool, "viewer", Role::Viewer, None).await;
    assert_eq!(api.call("GET", "/v1/subscriptions", &viewer, None).await.0, 200);
    assert_eq!(api.call("GET", &format!("/v1/deliveries/{ping_id}"), &viewer, None).await.0, 200);
    let valid = json!({ "name": "v", "url": "https://hooks.example.org/v" });
    for (method, path, body) in [
        ("POST", "/v1/subscriptions/sink/test", None),
        ("DELETE", "/v1/subscriptions/sink", None),
        ("PATCH", "/v1/subscriptions/sink", Some(json!({ "enabled": false }))),
        ("POST", "/v1/subscriptions", Some(valid)),
    ] {
        let (status, body) = api.call(method, path, &viewer, body).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{method} {path}");
    }

    // Delete: gone, with its history; every change is in the audit log.
    assert_eq!(api.call("DELETE", "/v1/subscriptions/sink", &api.op, None).await.0, 204);
    assert_eq!(api.call("GET", "/v1/subscriptions/sink", &api.op, None).await.0, 404);
    assert_eq!(api.call("GET", &format!("/v1/deliveries/{ping_id}"), &api.op, None).await.0, 404);
    cynode_orchestrator::audit::flush(&api.app.db.pool).await.expect("link the audit entries");
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE subject = 'subscription:sink'")
        .fetch_all(&api.app.db.pool)
        .await
        .expect("audit");
    for want in ["subscription.create", "subscription.rotate_secret", "subscription.disable", "subscription.delete"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn bad_subscription_input_gets_a_clear_json_error() {
    let api = Api::spawn().await;
    let ok = |name: &str| json!({ "name": name, "url": "https://hooks.example.org/x" });
    let cases = [
        (json!({ "name": "a", "url": "ftp://hooks.example.org/x" }), "http:// or https://"),
        (json!({ "name": "a", "url": "not a url" }), "not a valid URL"),
        (json!({ "name": "a", "url": api.app.url("/hooks/ci") }), "CyNode itself"),
        (json!({ "name": "a", "url": api.app.url("/x").replace("127.0.0.1", "localhost") }), "CyNode itself"),
        (json!({ "name": "a", "url": "https://u:p@hooks.example.org/" }), "credentials"),
        (json!({ "name": "bad name!", "url": "https://hooks.example.org/" }), "name"),
        (
            json!({ "name": "a", "url": "https://hooks.example.org/", "event_types": ["job.exploded"] }),
            "unknown event type",
        ),
        (json!({ "name": "a", "url": "https://hooks.example.org/", "event_types": ["ping"] }), "ping"),
        (json!({ "name": "a", "url": "https://hooks.example.org/", "filter": { "x": [1] } }), "filter"),
        (json!({ "name": "a", "url": "https://hooks.example.org/", "secret": "hunter2" }), "whsec_"),
        (json!({ "name": "a", "url": "https://hooks.example.org/", "colour": "red" }), "unknown field"),
        (json!({ "name": "a", "url": "https://hooks.example.org/", "install_id": uuid::Uuid::nil() }), "no install"),
    ];
    for (body, want) in cases {
        let (status, answer) = api.call("POST", "/v1/subscriptions", &api.op, Some(body.clone())).await;
        assert_eq!((status, code(&answer)), (400, "invalid_request"), "{body} → {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(want), "{body}: wanted {want:?} in {message:?}");
        assert!(!message.contains("hunter2"), "the secret is not echoed");
    }
    create(&api, &api.op, ok("taken")).await;
    let (status, answer) = api.call("POST", "/v1/subscriptions", &api.op, Some(ok("taken"))).await;
    assert_eq!((status, code(&answer)), (409, "conflict"), "{answer}");

    // Huge bodies, missing and bad tokens.
    let huge = json!({ "name": "h", "url": format!("https://hooks.example.org/{}", "y".repeat(2 * 1024 * 1024)) });
    let (status, answer) = api.call("POST", "/v1/subscriptions", &api.op, Some(huge)).await;
    assert_eq!((status, code(&answer)), (413, "payload_too_large"), "{answer}");
    let r = api.app.client.get(api.app.url("/v1/subscriptions")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    for bad in ["", "cyn_nope", &format!("cyn_{}", "0".repeat(64))] {
        let (status, answer) = api.call("POST", "/v1/subscriptions", bad, Some(ok("b"))).await;
        assert_eq!((status, code(&answer)), (401, "unauthorized"), "{bad:?}");
    }

    // Bad values elsewhere.
    let long_grace = json!({ "grace_seconds": 90 * 86_400 });
    let (status, answer) = api.call("POST", "/v1/subscriptions/taken/rotate", &api.op, Some(long_grace)).await;
    assert_eq!((status, code(&answer)), (400, "invalid_request"), "{answer}");
    let backwards = json!({ "since": "2026-11-22T10:00:00Z", "until": "2026-11-21T10:00:00Z" });
    let (status, answer) = api.call("POST", "/v1/subscriptions/taken/replay", &api.op, Some(backwards)).await;
    assert_eq!((status, code(&answer)), (400, "invalid_request"), "{answer}");
    let (status, _) = api.call("GET", "/v1/subscriptions/taken/deliveries?state=lost", &api.op, None).await;
    assert_eq!(status, 400);
    let (status, _) = api.call("PATCH", "/v1/subscriptions/taken", &api.op, Some(json!({ "url": "gopher://x" }))).await;
    assert_eq!(status, 400);
    for path in ["/v1/subscriptions/nope", "/v1/deliveries/nope", &format!("/v1/deliveries/{}", uuid::Uuid::nil())] {
        let (status, answer) = api.call("GET", path, &api.op, None).await;
        assert_eq!((status, code(&answer)), (404, "not_found"), "{path}");
    }
    let subs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subscriptions").fetch_one(&api.app.db.pool).await.expect("count");
    assert_eq!(subs, 1, "only `taken` was created");
}

/// The task ids of the `task.created` deliveries of a subscription.
async fn subjects(api: &Api, name: &str) -> Vec<String> {
    let (_, list) = api.call("GET", &format!("/v1/subscriptions/{name}/deliveries"), &api.admin, None).await;
    list["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["event_type"] == "task.created")
        .map(|d| d["payload"]["task_id"].as_str().expect("task").to_string())
        .collect()
}

#[tokio::test]
async fn a_tenants_token_sees_only_its_installs_subscriptions_and_events() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let ci = install_id(pool).await;
    let other = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'webhook', 'other', 'other')")
        .bind(other)
        .execute(pool)
        .await
        .expect("second install");
    let tenant = token(pool, "tenant", Role::Operator, Some(ci)).await;
    let stranger = token(pool, "stranger", Role::Operator, Some(other)).await;

    let mine = create(&api, &tenant, json!({ "name": "mine", "url": "https://a.example.org/" })).await;
    assert_eq!(mine["subscription"]["install_id"], ci.to_string(), "owned by the token's install");
    let body = json!({ "name": "theirs", "url": "https://b.example.org/", "install_id": other });
    let theirs = create(&api, &api.admin, body).await;
    let theirs_id = theirs["subscription"]["id"].as_str().expect("id").to_string();
    create(&api, &api.admin, json!({ "name": "global", "url": "https://c.example.org/" })).await;
    let body = json!({ "name": "x", "url": "https://d.example.org/", "install_id": other });
    let (status, answer) = api.call("POST", "/v1/subscriptions", &tenant, Some(body)).await;
    assert_eq!((status, code(&answer)), (400, "invalid_request"), "{answer}");

    // Lists: the tenant sees its own only; an unscoped admin sees all.
    let names = |list: &Value| -> Vec<String> {
        list["subscriptions"].as_array().expect("list").iter().map(|s| s["name"].as_str().expect("n").into()).collect()
    };
    assert_eq!(names(&api.call("GET", "/v1/subscriptions", &tenant, None).await.1), ["mine"]);
    assert_eq!(names(&api.call("GET", "/v1/subscriptions", &api.admin, None).await.1), ["global", "mine", "theirs"]);

    // Everything about another tenant's (or a global) subscription is 404, by id and by name.
    let (_, ping) = api.call("POST", "/v1/subscriptions/theirs/test", &api.admin, None).await;
    let delivery = ping["delivery_id"].as_str().expect("delivery").to_string();
    let since = json!({ "since": "2026-01-01T00:00:00Z" });
    for target in [theirs_id.as_str(), "theirs", "global"] {
        for (method, path, body) in [
            ("GET", format!("/v1/subscriptions/{target}"), None),
            ("PATCH", format!("/v1/subscriptions/{target}"), Some(json!({ "enabled": false }))),
            ("DELETE", format!("/v1/subscriptions/{target}"), None),
            ("POST", format!("/v1/subscriptions/{target}/test"), None),
            ("POST", format!("/v1/subscriptions/{target}/rotate"), Some(json!({}))),
            ("GET", format!("/v1/subscriptions/{target}/deliveries"), None),
            ("POST", format!("/v1/subscriptions/{target}/replay"), Some(since.clone())),
        ] {
            let (status, answer) = api.call(method, &path, &tenant, body).await;
            assert_eq!((status, code(&answer)), (404, "not_found"), "{method} {path}: {answer}");
            assert!(!answer.to_string().contains("b.example.org"));
        }
    }
    for path in [format!("/v1/deliveries/{delivery}"), format!("/v1/deliveries/{delivery}/replay")] {
        let method = if path.ends_with("replay") { "POST" } else { "GET" };
        assert_eq!(api.call(method, &path, &tenant, None).await.0, 404, "{path}");
    }
    assert_eq!(api.call("GET", &format!("/v1/deliveries/{delivery}"), &stranger, None).await.0, 200);
    assert_eq!(api.call("GET", "/v1/subscriptions/theirs", &api.op, None).await.0, 200, "global tokens see all");

    // Events: a tenant's subscription gets only its install's events; a global one gets all.
    let own_task = api.submit(&tenant, "run echo mine").await;
    let their_task = api.submit(&stranger, "run echo theirs").await;
    assert_eq!(subjects(&api, "mine").await, [own_task["task_id"].as_str().expect("id")]);
    assert_eq!(subjects(&api, "theirs").await, [their_task["task_id"].as_str().expect("id")]);
    assert_eq!(subjects(&api, "global").await.len(), 2);

    // Paging one by one visits every delivery once, also those created in one transaction (same created_at).
    let ids = |list: &Value| -> Vec<String> {
        list["deliveries"].as_array().expect("list").iter().map(|d| d["id"].as_str().expect("id").into()).collect()
    };
    let all = ids(&api.call("GET", "/v1/subscriptions/global/deliveries", &api.admin, None).await.1);
    let (mut paged, mut cursor) = (Vec::new(), String::new());
    loop {
        let path = format!("/v1/subscriptions/global/deliveries?limit=1&before={cursor}");
        let (_, page) = api.call("GET", &path, &api.admin, None).await;
        paged.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!((paged.len(), &paged), (4, &all), "task.created and job.queued of two tasks");

    // Approval events carry the install too, so the tenant's subscription gets both halves.
    let approver = token(pool, "approver", Role::Operator, Some(ci)).await;
    let held = api.submit(&tenant, "run --template busybox-net echo net").await;
    let job = held["job_id"].as_str().expect("job");
    assert_eq!(api.call("POST", &format!("/v1/jobs/{job}/approve"), &approver, None).await.0, 200);
    let (_, list) = api.call("GET", "/v1/subscriptions/mine/deliveries", &api.admin, None).await;
    let types: Vec<&str> =
        list["deliveries"].as_array().expect("list").iter().filter_map(|d| d["event_type"].as_str()).collect();
    for want in ["approval.requested", "approval.resolved"] {
        assert!(types.contains(&want), "{want} in {types:?}");
    }

    // Node registrations belong to no install: global subscriptions only. A token renewal (the same
    // capabilities again) is no event; other capabilities are.
    let key = "subs-test-node-key-0123456789";
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, 'k', $2, $3)")
        .bind(uuid::Uuid::now_v7())
        .bind(cynode_orchestrator::crypto::hash_credential(key))
        .bind(json!({ "executors": ["docker"] }))
        .execute(pool)
        .await
        .expect("node key");
    let register = |templates: &[&str]| {
        let caps = Capabilities {
            executors: vec![ExecutorKind::Docker],
            templates: templates.iter().map(|t| (*t).to_string()).collect(),
            ..Capabilities::default()
        };
        let req =
            RegisterRequest { protocol_versions: vec![1], name: "n1".into(), capabilities: caps, agent_version: None };
        async move { nodes::register(pool, key, &req).await.expect("register").node_id }
    };
    let node = register(&["busybox"]).await;
    assert_eq!(register(&["busybox"]).await, node);
    let registered = |list: &Value| -> Vec<Value> {
        let all = list["deliveries"].as_array().expect("list").iter();
        all.filter(|d| d["event_type"] == "node.registered").map(|d| d["payload"].clone()).collect()
    };
    let (_, global) = api.call("GET", "/v1/subscriptions/global/deliveries", &api.admin, None).await;
    let payloads = registered(&global);
    assert_eq!(payloads.len(), 1, "a renewal is no event: {global}");
    let first = &payloads[0];
    assert_eq!(
        (first["node_id"].as_str(), &first["executors"], &first["first"]),
        (Some(&*node.to_string()), &json!(["docker"]), &json!(true))
    );
    register(&["busybox", "python"]).await;
    let (_, global) = api.call("GET", "/v1/subscriptions/global/deliveries", &api.admin, None).await;
    assert_eq!(registered(&global).len(), 2, "new capabilities are");
    let (_, mine) = api.call("GET", "/v1/subscriptions/mine/deliveries", &api.admin, None).await;
    assert!(registered(&mine).is_empty());
}

/// Without `outbound.allow_cidrs`, a tenant's token cannot point a subscription at the gateway's neighbours:
/// loopback (also written as IPv4-mapped IPv6, or as `localhost`), cloud metadata, private ranges.
#[tokio::test]
async fn subscriptions_to_internal_addresses_are_refused_by_default() {
    use cynode_gateway::server::{CoreSettings, RouterSettings};
    let settings = RouterSettings { max_body_bytes: 1024 * 1024, request_timeout: std::time::Duration::from_secs(10) };
    let app = crate::support::TestApp::spawn_full(settings, CoreSettings::default()).await;
    seed(&app.db.pool).await;
    let op = token(&app.db.pool, "op", Role::Operator, None).await;
    let api = Api { app, admin: op.clone(), op };
    for (url, kind) in [
        ("http://127.0.0.1:18777/internal", "loopback"),
        ("http://[::ffff:127.0.0.1]:18777/internal", "loopback"),
        ("http://localhost:18777/internal", "`localhost`"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://[fd00::1]/", "unique-local"),
    ] {
        let (status, body) =
            api.call("POST", "/v1/subscriptions", &api.op, Some(json!({ "name": "probe", "url": url }))).await;
        assert_eq!(status, 400, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(kind) && message.contains("outbound.allow_cidrs"), "{url}: {message}");
    }
    let (_, list) = api.call("GET", "/v1/subscriptions", &api.op, None).await;
    assert_eq!(list["subscriptions"], json!([]));
}
