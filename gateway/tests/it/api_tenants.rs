//! Tenant isolation, generated from the OpenAPI document: every documented operation that names a resource is
//! called for resources of install A with an admin token of install B, and must answer 404 `not_found` (never 403,
//! which would confirm the resource exists) without changing anything; every list must leave A's resources out.
//! A new endpoint with a path parameter fails this test until its resource kind is added to `resource_of`. The
//! role endpoints name their install in the body or query and are called naming A's install.

use cynode_orchestrator::api_tokens::Role;
use serde_json::{Value, json};

use crate::api_support::*;

/// A's resource for a documented path, by its first segment.
fn resource_of<'a>(path: &str, ids: &'a Ids) -> &'a str {
    match path.trim_start_matches("/v1/").split('/').next().unwrap_or_default() {
        "tasks" => &ids.task,
        "jobs" => &ids.job,
        "subscriptions" => &ids.subscription,
        "deliveries" => &ids.delivery,
        "memories" => &ids.memory,
        "users" => &ids.user,
        other => panic!("{path}: no resource of kind `{other}` in the tenant table; add one to resource_of"),
    }
}

struct Ids {
    task: String,
    job: String,
    subscription: String,
    delivery: String,
    memory: String,
    user: String,
}

/// The documented example of an operation's request body, if it takes one.
fn example_body(doc: &Value, op: &Value) -> Option<Value> {
    let schema = op.pointer("/requestBody/content/application~1json/schema/$ref")?.as_str()?;
    let name = schema.rsplit('/').next()?;
    doc.pointer(&format!("/components/schemas/{name}/examples/0")).cloned().or(Some(json!({})))
}

#[tokio::test]
async fn another_installs_token_gets_404_from_every_documented_endpoint() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let a = install_id(pool).await;
    let b = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'webhook', 'other', 'other')")
        .bind(b)
        .execute(pool)
        .await
        .expect("install B");
    let tenant_a = token(pool, "tenant-a", Role::Admin, Some(a)).await;
    let tenant_b = token(pool, "tenant-b", Role::Admin, Some(b)).await;

    // A's resources: a held job (so approve/deny/cancel have something to act on), a subscription, a delivery.
    let (status, submitted) =
        api.call("POST", "/v1/tasks", &tenant_a, Some(json!({ "text": "run --template busybox-net curl x" }))).await;
    assert_eq!(status, 201, "{submitted}");
    let body = json!({ "name": "a-sub", "url": "https://a.example.org/hook" });
    let (status, sub) = api.call("POST", "/v1/subscriptions", &tenant_a, Some(body)).await;
    assert_eq!(status, 201, "{sub}");
    let subscription = sub["subscription"]["id"].as_str().expect("sub id").to_string();
    let (status, ping) = api.call("POST", &format!("/v1/subscriptions/{subscription}/test"), &tenant_a, None).await;
    assert!(status < 300, "{ping}");
    let body = json!({ "text": "tenant A keeps its deploy notes here", "scope": "install" });
    let (status, memory) = api.call("POST", "/v1/memories", &tenant_a, Some(body)).await;
    assert_eq!(status, 201, "{memory}");
    // A's team: a CyNode user with a chat identity and a role, set by the operator's global token.
    let body = json!({ "install": a.to_string(), "user": "UA-SECRET", "role": "approver" });
    assert_eq!(api.call("PUT", "/v1/roles", &api.admin, Some(body)).await.0, 200);
    let body = json!({ "install": a.to_string(), "user_id": "UA-SECRET" });
    assert_eq!(api.call("POST", "/v1/users/tenant-a-user/identities", &api.admin, Some(body)).await.0, 201);
    let ids = Ids {
        task: submitted["task_id"].as_str().expect("task").to_string(),
        job: submitted["job_id"].as_str().expect("job").to_string(),
        subscription,
        delivery: ping["delivery_id"].as_str().expect("delivery").to_string(),
        memory: memory["id"].as_str().expect("memory id").to_string(),
        user: "tenant-a-user".to_string(),
    };
    // A itself can read each of them (so a 404 below is isolation, not a bad id).
    for path in [
        format!("/v1/tasks/{}", ids.task),
        format!("/v1/jobs/{}", ids.job),
        format!("/v1/deliveries/{}", ids.delivery),
        format!("/v1/memories/{}", ids.memory),
        format!("/v1/users/{}", ids.user),
    ] {
        assert_eq!(api.call("GET", &path, &tenant_a, None).await.0, 200, "{path}");
    }

    let (_, doc) = api.call("GET", "/v1/openapi.json", &tenant_b, None).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let method = method.to_uppercase();
            if let Some(param) = ["{id}", "{name}"].into_iter().find(|p| path.contains(p)) {
                let url = path.replace(param, resource_of(path, &ids));
                let (status, answer) = api.call(&method, &url, &tenant_b, example_body(&doc, op)).await;
                assert_eq!(status, 404, "{method} {path} with another install's token: {answer}");
                assert_eq!(answer["error"]["code"], "not_found", "{method} {path}: {answer}");
                // Indistinguishable from a resource that does not exist at all (except where a missing name is
                // created: linking an identity to a new user).
                if method == "POST" && param == "{name}" {
                    checked += 1;
                    continue;
                }
                let nobody = uuid::Uuid::now_v7().to_string();
                let (status2, absent) =
                    api.call(&method, &path.replace(param, &nobody), &tenant_b, example_body(&doc, op)).await;
                let own = resource_of(path, &ids);
                assert_eq!(status2, 404, "{method} {path} for a missing id");
                assert_eq!(
                    answer.to_string().replace(own, "ID"),
                    absent.to_string().replace(&nobody, "ID"),
                    "{method} {path}"
                );
                checked += 1;
            } else if method == "GET" {
                let (status, answer) = api.call(&method, path, &tenant_b, None).await;
                assert!(status == 200 || status == 403, "{method} {path}: {status} {answer}");
                let text = answer.to_string();
                for id in [&ids.task, &ids.job, &ids.subscription, &ids.delivery, &ids.memory, &ids.user] {
                    assert!(!text.contains(id.as_str()), "{method} {path} lists A's resource {id}: {text}");
                }
                assert!(!text.contains("a.example.org") && !text.contains("busybox-net curl"), "{path}: {text}");
                assert!(!text.contains("deploy notes"), "{path} shows A's memory: {text}");
                assert!(!text.contains("UA-SECRET"), "{path} shows A's chat user: {text}");
            }
        }
    }
    assert!(checked >= 16, "every operation with a path parameter was called ({checked})");

    // Roles name their install in the body or query: A's answers 404 to B, like an install that does not exist.
    let a_name = a.to_string();
    for (method, path, body) in [
        ("GET", format!("/v1/roles?install={a_name}"), None),
        ("PUT", "/v1/roles".to_string(), Some(json!({ "install": a_name, "user": "UA-SECRET", "role": "admin" }))),
        ("DELETE", format!("/v1/roles?install={a_name}&user=UA-SECRET"), None),
        ("GET", format!("/v1/team?install={a_name}"), None),
        ("PUT", "/v1/team".to_string(), Some(json!({ "install": a_name, "default_role": "none" }))),
        (
            "POST",
            "/v1/users/somebody-new/identities".to_string(),
            Some(json!({ "install": a_name, "user_id": "UB-1" })),
        ),
    ] {
        let (status, answer) = api.call(method, &path, &tenant_b, body.clone()).await;
        assert_eq!(status, 404, "{method} {path} naming A's install: {answer}");
        let missing = path.replace(&a_name, "0193a6f0-0000-7000-8000-000000000000");
        let body = body.map(|b| {
            serde_json::from_str(&b.to_string().replace(&a_name, "0193a6f0-0000-7000-8000-000000000000")).expect("json")
        });
        let (_, absent) = api.call(method, &missing, &tenant_b, body).await;
        assert_eq!(
            answer.to_string().replace(&a_name, "ID"),
            absent.to_string().replace("0193a6f0-0000-7000-8000-000000000000", "ID"),
            "{method} {path}"
        );
    }
    let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM role_grants WHERE install_id = $1")
        .bind(a)
        .fetch_all(pool)
        .await
        .expect("roles");
    assert_eq!(roles, ["approver"], "A's grant is as A set it");
    let settings: i64 = sqlx::query_scalar("SELECT count(*) FROM team_settings").fetch_one(pool).await.expect("n");
    assert_eq!(settings, 0, "B changed no team settings");

    // Nothing of A's changed.
    let (_, job) = api.call("GET", &format!("/v1/jobs/{}", ids.job), &tenant_a, None).await;
    assert_eq!(job["state"], "awaiting_approval", "{job}");
    let (status, _) = api.call("GET", &format!("/v1/subscriptions/{}", ids.subscription), &tenant_a, None).await;
    assert_eq!(status, 200, "the subscription survived B's DELETE");
    let (status, _) = api.call("GET", &format!("/v1/memories/{}", ids.memory), &tenant_a, None).await;
    assert_eq!(status, 200, "the memory survived B's DELETE");
}
