//! The OpenAPI document matches the implementation: every routed operation is documented and answers, and
//! every schema example deserializes into the type the handlers use.

use cynode_gateway::routes::api::{self, memories as mem, model, model_subs as subs, model_team as team};
use serde_json::Value;

use crate::api_support::*;

fn check<T: serde::de::DeserializeOwned>(name: &str, example: &Value) {
    if let Err(e) = serde_json::from_value::<T>(example.clone()) {
        panic!("example of {name} does not fit the type: {e}\n{example}");
    }
}

#[tokio::test]
async fn the_document_matches_the_router_and_the_types() {
    let api = Api::spawn().await;
    let r = api.app.client.get(api.app.url("/v1/openapi.json")).send().await.expect("send");
    assert_eq!(r.status(), 200, "public");
    let doc: Value = r.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");

    // Documented operations == the routing table, and each answers on the real router.
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            documented.push((method.clone(), path.clone()));
            let url = api.app.url(&path.replace("{id}", "0193a6f0-7c1e-7d2a-9b1c-3f4e5a6b7c8d"));
            let status = api.app.client.request(method.to_uppercase().parse().expect("m"), url).send().await;
            let status = status.expect("send").status().as_u16();
            let want = if op["security"].as_array().is_some_and(Vec::is_empty) { 200 } else { 401 };
            assert_eq!(status, want, "{method} {path} is routed and guarded as documented");
            for code in op["responses"].as_object().expect("responses").keys() {
                assert!(code.parse::<u16>().is_ok(), "{code}");
            }
        }
    }
    let mut routed: Vec<(String, String)> =
        api::operations().iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
    routed.sort();
    documented.sort();
    assert_eq!(routed, documented);

    // Every $ref resolves, and every example is a valid value of the real type.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().expect("name");
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    for (name, schema) in schemas {
        for example in schema["examples"].as_array().into_iter().flatten() {
            match name.as_str() {
                "SubmitRequest" => check::<model::SubmitRequest>(name, example),
                "SubmitResponse" => check::<model::SubmitResponse>(name, example),
                "Approval" => check::<model::ApprovalView>(name, example),
                "Task" => check::<model::TaskView>(name, example),
                "Job" => check::<model::JobView>(name, example),
                "TaskList" => check::<model::TaskList>(name, example),
                "ActionResponse" => check::<model::ActionResponse>(name, example),
                "Node" => check::<model::NodeView>(name, example),
                "NodeList" => check::<model::NodeList>(name, example),
                "TaskEvent" => check::<model::TaskEvent>(name, example),
                "EndEvent" => check::<model::EndEvent>(name, example),
                "Error" => check::<model::ErrorBody>(name, example),
                "Subscription" => check::<subs::Subscription>(name, example),
                "CreateSubscriptionRequest" => check::<subs::CreateSubscriptionRequest>(name, example),
                "CreatedSubscription" => check::<subs::CreatedSubscriptionResponse>(name, example),
                "SubscriptionList" => check::<subs::SubscriptionList>(name, example),
                "UpdateSubscriptionRequest" => check::<subs::UpdateSubscriptionRequest>(name, example),
                "RotateRequest" => check::<subs::RotateRequest>(name, example),
                "RotateResponse" => check::<subs::RotateResponse>(name, example),
                "QueuedDelivery" => check::<subs::QueuedDelivery>(name, example),
                "ReplayRangeRequest" => check::<subs::ReplayRangeRequest>(name, example),
                "ReplayRangeResponse" => check::<subs::ReplayRangeResponse>(name, example),
                "Delivery" => check::<subs::Delivery>(name, example),
                "DeliveryList" => check::<subs::DeliveryList>(name, example),
                "UsageReport" => check::<cynode_orchestrator::usage::UsageReport>(name, example),
                "UsageRow" => check::<cynode_orchestrator::usage::UsageRow>(name, example),
                "UsageTotal" => check::<cynode_orchestrator::usage::UsageTotal>(name, example),
                "Memory" => check::<cynode_orchestrator::memory::Memory>(name, example),
                "MemoryList" => check::<mem::MemoryList>(name, example),
                "CreateMemoryRequest" => check::<mem::CreateMemoryRequest>(name, example),
                "ImportMemoriesRequest" => check::<mem::ImportMemoriesRequest>(name, example),
                "ForgetRequest" => check::<mem::ForgetRequest>(name, example),
                "CountResponse" => check::<mem::CountResponse>(name, example),
                "Identity" => check::<team::IdentityView>(name, example),
                "UserRole" => check::<team::UserRoleView>(name, example),
                "User" => check::<team::UserView>(name, example),
                "UserList" => check::<team::UserList>(name, example),
                "LinkIdentityRequest" => check::<team::LinkIdentityRequest>(name, example),
                "RoleGrant" => check::<team::RoleGrantView>(name, example),
                "RoleList" => check::<team::RoleList>(name, example),
                "SetRoleRequest" => check::<team::SetRoleRequest>(name, example),
                "RoleGrantSpec" => check::<cynode_orchestrator::team::RoleGrant>(name, example),
                "TeamSettings" => check::<team::TeamSettingsView>(name, example),
                "TeamSettingsRequest" => check::<team::TeamSettingsRequest>(name, example),
                other => panic!("schema {other} has an example but no type to check it against"),
            }
        }
    }

    // Real responses carry exactly the documented properties.
    let sub = api.submit(&api.op, "run echo hi").await;
    let body = serde_json::json!({ "name": "doc", "url": "https://hooks.example.org/x" });
    let (_, created) = api.call("POST", "/v1/subscriptions", &api.op, Some(body)).await;
    let (_, ping) = api.call("POST", "/v1/subscriptions/doc/test", &api.op, None).await;
    let path = format!("/v1/deliveries/{}", ping["delivery_id"].as_str().expect("delivery"));
    let (_, delivery) = api.call("GET", &path, &api.op, None).await;
    let (_, usage) = api.call("GET", "/v1/usage", &api.op, None).await;
    let link = serde_json::json!({ "install": "ci", "user_id": "U1", "display_name": "Ada" });
    let (_, user) = api.call("POST", "/v1/users/ada/identities", &api.admin, Some(link)).await;
    let grant = serde_json::json!({ "install": "ci", "user": "U1", "role": "admin" });
    let (_, role) = api.call("PUT", "/v1/roles", &api.admin, Some(grant)).await;
    let (_, shown) = api.call("GET", "/v1/users/ada", &api.op, None).await;
    let (_, settings) = api.call("GET", "/v1/team?install=ci", &api.op, None).await;
    for (schema, value) in [
        ("TeamSettings", &settings),
        ("User", &user),
        ("Identity", &user["identities"][0]),
        ("UserRole", &shown["roles"][0]),
        ("RoleGrant", &role),
        ("SubmitResponse", &sub),
        ("Task", &sub["task"]),
        ("Job", &sub["task"]["jobs"][0]),
        ("CreatedSubscription", &created),
        ("Subscription", &created["subscription"]),
        ("Delivery", &delivery),
        ("UsageReport", &usage),
        ("UsageTotal", &usage["total"]),
    ] {
        let props: Vec<&String> = schemas[schema]["properties"].as_object().expect("props").keys().collect();
        let got: Vec<&String> = value.as_object().expect("object").keys().collect();
        let (mut props, mut got) = (props, got);
        props.sort();
        got.sort();
        assert_eq!(props, got, "{schema}");
    }
}
