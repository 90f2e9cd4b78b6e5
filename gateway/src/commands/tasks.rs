//! `cynode tasks`: recent tasks the token may see.

use super::client::ApiClient;
use crate::cli::TasksArgs;
use crate::routes::api::model::TaskList;

/// Runs `cynode tasks`.
///
/// # Errors
/// API failures, phrased for the user.
pub async fn run(args: &TasksArgs, api: &ApiClient) -> anyhow::Result<()> {
    let list: TaskList = api.get(&format!("/v1/tasks?limit={}", args.limit.clamp(1, 100))).await?;
    if args.client.json {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    if list.tasks.is_empty() {
        println!("No tasks yet. Try: cynode say \"run echo hi\"");
        return Ok(());
    }
    println!("{:<36}  {:<10}  {:<20}  {:<8}  TEXT", "TASK", "STATE", "CREATED", "JOBS");
    for t in &list.tasks {
        let text: String = t.text.chars().take(50).collect();
        let jobs: Vec<String> = t.jobs.iter().map(|j| j.id.simple().to_string()[..8].to_string()).collect();
        let created = t.created_at.format("%Y-%m-%d %H:%M:%S").to_string();
        println!("{:<36}  {:<10}  {created:<20}  {:<8}  {text}", t.id, t.state, jobs.join(","));
    }
    Ok(())
}
