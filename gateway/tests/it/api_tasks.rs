//! The user API over a real socket: tokens and roles, submit, read, output, cancel, approve/deny, limits.

use cynode_orchestrator::api_tokens::Role;
use cynode_protocol::FinishStatus;
use serde_json::json;

use crate::api_support::*;

#[tokio::test]
async fn missing_bad_and_revoked_tokens_get_401_with_a_json_error() {
    let api = Api::spawn().await;
    let r = api.app.client.get(api.app.url("/v1/tasks")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    for bad in ["nope", "cyn_", &format!("cyn_{}", "0".repeat(64)), &api.admin[..api.admin.len() - 1]] {
        let (status, body) = api.call("GET", "/v1/tasks", bad, None).await;
        assert_eq!(status, 401, "{bad}: {body}");
    }
    cynode_orchestrator::api_tokens::revoke(&api.app.db.pool, "test", "op").await.expect("revoke");
    assert_eq!(api.call("GET", "/v1/tasks", &api.op, None).await.0, 401);
    let last_used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens WHERE name = 'admin'")
            .fetch_one(&api.app.db.pool)
            .await
            .expect("row");
    assert!(last_used.is_none(), "no successful use yet");
    assert_eq!(api.call("GET", "/v1/tasks", &api.admin, None).await.0, 200);
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(&api.app.db.pool).await.expect("rows");
    assert!(stored.iter().all(|h| h.len() == 32 && !api.admin.as_bytes().windows(32).any(|w| w == h.as_slice())));
}

#[tokio::test]
async fn submit_creates_a_task_and_job_and_reads_it_back() {
    let api = Api::spawn().await;
    let body = api.submit(&api.op, "run echo hi").await;
    let (task, job) = (body["task_id"].as_str().expect("task"), body["job_id"].as_str().expect("job"));
    assert!(body["reply"].as_str().expect("reply").contains("queued"), "{body}");
    assert_eq!(body["task"]["source"], "api");
    assert_eq!(body["task"]["requester"], "op");
    assert_eq!(body["task"]["state"], "queued");
    let (source, requester): (String, String) =
        sqlx::query_as("SELECT source, requester FROM tasks WHERE id = $1::uuid")
            .bind(task)
            .fetch_one(&api.app.db.pool)
            .await
            .expect("task row");
    assert_eq!((source.as_str(), requester.as_str()), ("api", "op"));
    let (status, got) = api.call("GET", &format!("/v1/tasks/{task}"), &api.op, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["jobs"][0]["id"], job);
    assert_eq!(got["jobs"][0]["state"], "queued");
    let (status, got) = api.call("GET", &format!("/v1/jobs/{job}"), &api.op, None).await;
    assert_eq!((status, got["task_id"].as_str()), (200, Some(task)));

    // Answers without a job are tasks too, and grammar errors are answered, not failed.
    let help = api.submit(&api.op, "help").await;
    assert_eq!(help["task"]["state"], "answered");
    assert!(help["job_id"].is_null());
    let bad = api.submit(&api.op, "run").await;
    assert_eq!(bad["task"]["command"], "invalid");

    // Paging: newest first, with a cursor.
    let (_, page) = api.call("GET", "/v1/tasks?limit=2", &api.op, None).await;
    assert_eq!(page["tasks"].as_array().expect("tasks").len(), 2);
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (_, rest) = api.call("GET", &format!("/v1/tasks?limit=2&before={cursor}"), &api.op, None).await;
    assert_eq!(rest["tasks"][0]["id"], task);
    assert!(rest["next_cursor"].is_null());
    assert_eq!(api.call("GET", "/v1/tasks?limit=0", &api.op, None).await.0, 400);
}

#[tokio::test]
async fn roles_and_tenants_are_enforced() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let install = install_id(pool).await;
    let viewer = token(pool, "viewer", Role::Viewer, None).await;
    let tenant = token(pool, "tenant-op", Role::Operator, Some(install)).await;
    let global = api.submit(&api.op, "run echo global").await;
    let (task, job) = (global["task_id"].as_str().expect("t"), global["job_id"].as_str().expect("j"));

    // Viewer: reads, never writes.
    assert_eq!(api.call("GET", &format!("/v1/tasks/{task}"), &viewer, None).await.0, 200);
    let (status, body) = api.call("POST", "/v1/tasks", &viewer, Some(json!({ "text": "run echo x" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(api.call("POST", &format!("/v1/jobs/{job}/cancel"), &viewer, None).await.0, 403);
    assert_eq!(api.call("GET", "/v1/nodes", &viewer, None).await.0, 403);
    assert_eq!(api.call("GET", "/v1/nodes", &api.op, None).await.0, 200);

    // Another tenant: the global task does not exist for it.
    for path in [format!("/v1/tasks/{task}"), format!("/v1/jobs/{job}"), format!("/v1/jobs/{job}/output")] {
        let (status, body) = api.call("GET", &path, &tenant, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    assert_eq!(api.call("GET", &format!("/v1/tasks/{task}/events"), &tenant, None).await.0, 404);
    assert_eq!(api.call("POST", &format!("/v1/jobs/{job}/cancel"), &tenant, None).await.0, 404);
    let own = api.submit(&tenant, "run echo mine").await;
    assert_eq!(own["task"]["install_id"], install.to_string());
    let (_, list) = api.call("GET", "/v1/tasks", &tenant, None).await;
    let ids: Vec<&str> = list["tasks"].as_array().expect("tasks").iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, vec![own["task_id"].as_str().expect("id")]);
    assert_eq!(api.call("GET", "/v1/tasks/not-a-uuid", &api.op, None).await.0, 404);

    // An operator cancels only its own jobs; an admin token of another name cannot cancel either unless approver.
    let other = token(pool, "other-op", Role::Operator, None).await;
    let (status, body) = api.call("POST", &format!("/v1/jobs/{job}/cancel"), &other, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = api.call("POST", &format!("/v1/jobs/{job}/cancel"), &api.op, None).await;
    assert_eq!((status, body["job"]["state"].as_str()), (200, Some("cancelled")), "{body}");
    let (status, body) = api.call("POST", &format!("/v1/jobs/{job}/cancel"), &api.op, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")));
    cynode_orchestrator::audit::flush(pool).await.expect("link the audit entries");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(pool).await.expect("audit");
    assert!(actions.iter().any(|a| a == "job.cancel") && actions.iter().any(|a| a == "api_token.created"));
}

#[tokio::test]
async fn approvals_go_through_the_approver_list() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let approver = token(pool, "approver", Role::Operator, None).await;
    let held = api.submit(&api.op, "run --template busybox-net curl example.com").await;
    assert_eq!(held["task"]["state"], "waiting");
    assert_eq!(held["approval"]["approvers"], json!(["approver"]));
    let job = held["job_id"].as_str().expect("job");
    let (status, body) = api.call("POST", &format!("/v1/jobs/{job}/approve"), &api.admin, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "admin is no approver");
    let (status, body) = api.call("POST", &format!("/v1/jobs/{job}/approve"), &approver, None).await;
    assert_eq!((status, body["job"]["state"].as_str()), (200, Some("queued")), "{body}");
    let (status, _) = api.call("POST", &format!("/v1/jobs/{job}/deny"), &approver, None).await;
    assert_eq!(status, 409, "no longer waiting");

    let second = api.submit(&api.op, "run --template busybox-net curl example.org").await;
    let job2 = second["job_id"].as_str().expect("job");
    let (status, body) = api.call("POST", &format!("/v1/jobs/{job2}/deny"), &approver, None).await;
    assert_eq!((status, body["job"]["state"].as_str()), (200, Some("cancelled")));
    let (_, task) =
        api.call("GET", &format!("/v1/tasks/{}", second["task_id"].as_str().expect("t")), &api.op, None).await;
    assert_eq!(task["state"], "cancelled");
}

#[tokio::test]
async fn full_output_comes_back_in_order_per_attempt() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let node = sandbox_node(pool).await;
    let d = &api.app.state.dispatcher;
    let sub = api.submit(&api.op, "run seq 3").await;
    let job = sub["job_id"].as_str().expect("job");
    let l = lease(d, node).await;
    // Uploaded out of order: read back in sequence order.
    output(d, node, &l, 2, "3\n").await;
    output(d, node, &l, 0, "1\n").await;
    output(d, node, &l, 1, "2\n").await;
    finish(d, node, &l, FinishStatus::Succeeded, 0).await;
    let r = api.app.client.get(api.app.url(&format!("/v1/jobs/{job}/output"))).bearer_auth(&api.op).send().await;
    let r = r.expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().expect("ct").starts_with("text/plain"));
    assert_eq!(r.text().await.expect("text"), "1\n2\n3\n");
    let (status, _) = api.call("GET", &format!("/v1/jobs/{job}/output?attempt=2"), &api.op, None).await;
    assert_eq!(status, 400);
    let (_, task) = api.call("GET", &format!("/v1/tasks/{}", sub["task_id"].as_str().expect("t")), &api.op, None).await;
    assert_eq!(task["state"], "succeeded");
    assert_eq!(task["jobs"][0]["result"]["exit_code"], 0);
}

#[tokio::test]
async fn bad_and_huge_bodies_are_json_errors() {
    let api = Api::spawn().await;
    let (status, body) = api.call("POST", "/v1/tasks", &api.op, Some(json!({ "txt": "run echo" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, _) = api.call("POST", "/v1/tasks", &api.op, Some(json!({ "text": "   " }))).await;
    assert_eq!(status, 400);
    let long = "x".repeat(5000);
    assert_eq!(api.call("POST", "/v1/tasks", &api.op, Some(json!({ "text": long }))).await.0, 400);
    let huge = "y".repeat(2 * 1024 * 1024);
    let (status, body) = api.call("POST", "/v1/tasks", &api.op, Some(json!({ "text": huge }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks").fetch_one(&api.app.db.pool).await.expect("n");
    assert_eq!(tasks, 0);
}
