//! Roles in a whole agent turn: a tool call the requester's role does not grant does not run; its refusal goes
//! back to the model as the tool's result, so the model can answer, and the thread shows it was refused.

use std::collections::BTreeMap;

use cynode_orchestrator::agent::AgentSettings;
use cynode_orchestrator::team::{self, RoleGrant, TeamRole};

use crate::agent::start;

#[tokio::test]
async fn a_tool_the_role_does_not_grant_goes_back_to_the_model_as_an_error() {
    let a = start(AgentSettings::default()).await;
    let member = RoleGrant { tools: Some(vec!["list_jobs".into()]), ..RoleGrant::default() };
    let grants = BTreeMap::from([("member".to_string(), member)]);
    team::set_team_settings(&a.db.pool, "test", a.install, TeamRole::Member, &grants).await.expect("grants");

    a.say("U1", "why is CI red?").await;
    a.model_step("", &[("run_command", r#"{"command": "cat /etc/passwd"}"#), ("list_jobs", "{}")]).await;
    let step2 = a.model_step("I may not run commands for you here; ask an admin.", &[]).await;
    let results: Vec<&str> =
        step2.messages.iter().filter(|m| m.role == "tool").filter_map(|m| m.content.as_deref()).collect();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results[0].starts_with("error: the requester's role here (member) does not grant the tool `run_command`"),
        "{}",
        results[0]
    );
    assert_eq!(results[1], "This thread has no jobs.", "a granted tool ran");
    let (state, shown) = a.ended().await;
    assert_eq!(state, "succeeded", "the model answered after the refusal");
    assert!(shown.contains("run_command → refused: not granted to the requester's role"), "{shown}");
    assert!(shown.contains("I may not run commands for you here"), "{shown}");
    let docker: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'docker'")
        .fetch_one(&a.db.pool)
        .await
        .expect("count");
    assert_eq!(docker, 0, "the refused command did not run");
    cynode_orchestrator::audit::flush(&a.db.pool).await.expect("link the audit entries");
    let refused: Vec<String> = sqlx::query_scalar("SELECT subject FROM audit_log WHERE action = 'tool.refused'")
        .fetch_all(&a.db.pool)
        .await
        .expect("audit");
    assert_eq!(refused, ["run_command"]);
}
