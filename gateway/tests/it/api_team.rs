//! `/v1/users` and `/v1/roles`: viewers read; changes need an admin token, and an install token must speak for an
//! admin of its install (a linked CyNode user whose chat identity there is `admin`); every change is audited with
//! the token's name, on the same functions as the CLI.

use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::team::{self, TeamRole, users};
use serde_json::{Value, json};

use crate::api_support::*;

async fn actions(api: &Api, actor: &str) -> Vec<String> {
    cynode_orchestrator::audit::flush(&api.app.db.pool).await.expect("link the audit entries");
    sqlx::query_scalar("SELECT action FROM audit_log WHERE actor = $1 ORDER BY seq")
        .bind(actor)
        .fetch_all(&api.app.db.pool)
        .await
        .expect("audit")
}

#[tokio::test]
async fn an_install_admin_manages_roles_and_users_and_everything_is_audited() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let ci = install_id(pool).await;
    // `boss` is an admin of install `ci` through the chat identity UBOSS; `mallory` is only a member there.
    let boss = token(pool, "boss", Role::Admin, Some(ci)).await;
    let mallory = token(pool, "mallory", Role::Admin, Some(ci)).await;
    let viewer = token(pool, "peek", Role::Viewer, Some(ci)).await;
    let unlinked = token(pool, "stray", Role::Admin, Some(ci)).await;
    team::set_role(pool, "test", ci, None, "UBOSS", TeamRole::Admin).await.expect("admin");
    team::set_role(pool, "test", ci, None, "UMAL", TeamRole::Member).await.expect("member");
    team::set_role(pool, "test", ci, Some("COPS"), "UMAL", TeamRole::Admin).await.expect("channel admin");
    users::link_identity(pool, "test", "boss", "ci", "UBOSS", None).await.expect("link");
    users::link_token(pool, "test", "boss", "boss").await.expect("link token");
    users::link_identity(pool, "test", "mallory", "ci", "UMAL", None).await.expect("link");
    users::link_token(pool, "test", "mallory", "mallory").await.expect("link token");

    let grant = json!({ "user": "U1", "role": "approver" });
    let (status, body) = api.call("PUT", "/v1/roles", &boss, Some(grant.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "install_id": ci, "channel": "", "user_id": "U1", "role": "approver" }));
    let (status, body) = api.call("PUT", "/v1/roles", &mallory, Some(grant.clone())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("needs an admin of this install") && message.contains("`mallory`"), "{message}");
    let (status, body) = api.call("PUT", "/v1/roles", &unlinked, Some(grant.clone())).await;
    assert_eq!(status, 403, "an admin token nobody linked is not an admin of the install: {body}");
    let (status, body) = api.call("PUT", "/v1/roles", &viewer, Some(grant)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("role admin or higher"), "{body}");
    let (status, body) = api.call("PUT", "/v1/roles", &boss, Some(json!({ "user": "U1", "role": "boss" }))).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("admin, approver, member"), "{body}");
    let (status, body) = api.call("PUT", "/v1/roles", &boss, Some(json!({ "user": "U1", "role": 3 }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let over = json!({ "user": "U1", "role": "viewer", "channel": "CPROD" });
    assert_eq!(api.call("PUT", "/v1/roles", &boss, Some(over)).await.0, 200);
    let s = team::standing(pool, ci, None, "U1").await.expect("standing");
    assert_eq!(s.role, TeamRole::Approver, "the grant took effect");

    let (status, listed) = api.call("GET", "/v1/roles", &viewer, None).await;
    assert_eq!(status, 200, "viewers read: {listed}");
    let rows: Vec<(&str, &str, &str)> = listed["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|g| {
            (
                g["user_id"].as_str().unwrap_or("?"),
                g["channel"].as_str().unwrap_or("?"),
                g["role"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert!(rows.contains(&("U1", "", "approver")) && rows.contains(&("U1", "CPROD", "viewer")), "{listed}");

    let (status, removed) = api.call("DELETE", "/v1/roles?user=U1&channel=CPROD", &boss, None).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["role"], "viewer");
    let (status, again) = api.call("DELETE", "/v1/roles?user=U1&channel=CPROD", &boss, None).await;
    assert_eq!(status, 404, "{again}");
    assert!(
        again["error"]["message"].as_str().unwrap_or_default().contains("no role grant for `U1` in channel `CPROD`")
    );
    let (status, body) = api.call("DELETE", "/v1/roles?user=U1", &mallory, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api.call("DELETE", "/v1/roles", &boss, None).await;
    assert_eq!(status, 400, "{body}");

    // Users: link, read, conflicts.
    let link = json!({ "user_id": "U1", "display_name": "Ada" });
    let (status, ada) = api.call("POST", "/v1/users/ada/identities", &boss, Some(link)).await;
    assert_eq!(status, 201, "{ada}");
    assert_eq!(ada["name"], "ada");
    assert_eq!(ada["identities"][0]["user_id"], "U1");
    assert_eq!(ada["identities"][0]["display_name"], "Ada");
    assert_eq!(ada["roles"], json!([{ "install": "ci", "channel": "", "role": "approver" }]));
    let by_id = format!("/v1/users/{}/identities", ada["id"].as_str().expect("id"));
    let (status, ada) = api.call("POST", &by_id, &boss, Some(json!({ "user_id": "U5" }))).await;
    assert_eq!(status, 201, "{ada}");
    assert_eq!((ada["name"].as_str(), ada["identities"].as_array().map(Vec::len)), (Some("ada"), Some(2)), "by id");
    let (status, body) = api.call("POST", "/v1/users/eve/identities", &boss, Some(json!({ "user_id": "U1" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, body) = api.call("POST", "/v1/users/eve/identities", &mallory, Some(json!({ "user_id": "U7" }))).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api.call("POST", "/v1/users/eve/identities", &boss, Some(json!({ "user_id": " " }))).await;
    assert_eq!(status, 400, "{body}");
    let (status, listed) = api.call("GET", "/v1/users", &viewer, None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        listed["users"].as_array().expect("users").iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!(names, ["ada", "boss", "mallory"], "eve was never created");
    let (status, shown) = api.call("GET", "/v1/users/boss", &viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["tokens"], json!(["boss"]));
    let (status, body) = api.call("GET", "/v1/users/nobody", &viewer, None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "there is no CyNode user `nobody`");

    assert_eq!(actions(&api, "boss").await, ["role.set", "role.set", "role.removed", "user.link", "user.link"]);
    assert!(actions(&api, "mallory").await.is_empty(), "refusals change nothing");

    // The operator's global admin token may change any install, naming it.
    let (status, body) =
        api.call("PUT", "/v1/roles", &api.admin, Some(json!({ "user": "U2", "role": "viewer" }))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("a global token names the install"));
    let body = json!({ "install": "ci", "user": "U2", "role": "viewer" });
    assert_eq!(api.call("PUT", "/v1/roles", &api.admin, Some(body)).await.0, 200);
    let (status, body) = api
        .call("PUT", "/v1/roles", &api.admin, Some(json!({ "install": "nope", "user": "U2", "role": "viewer" })))
        .await;
    assert_eq!((status, &body["error"]["message"]), (404, &Value::from("there is no install `nope`")), "{body}");
}

#[tokio::test]
async fn team_settings_grant_models_and_tools_through_the_api() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let ci = install_id(pool).await;
    let viewer = token(pool, "peek", Role::Viewer, Some(ci)).await;
    let (status, body) = api.call("GET", "/v1/team", &viewer, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "install_id": ci, "default_role": "member", "grants": {} }), "the defaults");

    let settings = json!({ "install": "ci", "default_role": "viewer",
                           "grants": { "member": { "models": ["small"], "tools": ["read_thread"] } } });
    let (status, body) = api.call("PUT", "/v1/team", &api.admin, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["grants"]["member"], json!({ "models": ["small"], "tools": ["read_thread"] }));
    let (_, read) = api.call("GET", "/v1/team", &viewer, None).await;
    assert_eq!(read, body, "what was stored is what is read");
    let s = team::standing(pool, ci, None, "USTRANGER").await.expect("standing");
    assert_eq!(s.role, TeamRole::Viewer, "the default role took effect");

    for (bad, want) in [
        (json!({ "install": "ci", "default_role": "admin" }), "default_role is member, viewer or none, not `admin`"),
        (json!({ "install": "ci", "grants": { "boss": {} } }), "`boss` is not a role"),
        (json!({ "install": "ci", "grants": { "member": { "tools": ["sudo"] } } }), "`sudo` is not an agent tool"),
    ] {
        let (status, body) = api.call("PUT", "/v1/team", &api.admin, Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(want), "{body}");
    }
    let (status, body) = api
        .call("PUT", "/v1/team", &api.admin, Some(json!({ "install": "ci", "grants": { "member": { "gpu": "no" } } })))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, _) = api.call("PUT", "/v1/team", &viewer, Some(json!({ "default_role": "none" }))).await;
    assert_eq!(status, 403);
    assert_eq!(actions(&api, "admin").await, ["team.settings"], "one change, audited with the token's name");
}
