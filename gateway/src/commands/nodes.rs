//! `cynode nodes`: registered nodes.

use super::client::ApiClient;
use crate::cli::ClientArgs;
use crate::routes::api::model::NodeList;

/// Runs `cynode nodes`.
///
/// # Errors
/// API failures, phrased for the user.
pub async fn run(args: &ClientArgs, api: &ApiClient) -> anyhow::Result<()> {
    let list: NodeList = api.get("/v1/nodes").await?;
    if args.json {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    if list.nodes.is_empty() {
        println!("No nodes registered.");
        return Ok(());
    }
    println!(
        "{:<36}  {:<24}  {:<8}  {:>7}  {:<20}  {:<10}  EXECUTORS",
        "NODE", "NAME", "STATE", "RUNNING", "LAST SEEN", "VERSION"
    );
    let now = chrono::Utc::now();
    for n in &list.nodes {
        let executors = n.capabilities.get("executors").map(ToString::to_string).unwrap_or_default();
        let state = if n.online { "online" } else { "offline" };
        let ago = (now - n.last_seen_at).num_seconds().max(0);
        let seen = format!("{} ({ago} s ago)", n.last_seen_at.format("%H:%M:%S"));
        let version = n.agent_version.clone().unwrap_or_else(|| format!("p{}", n.protocol));
        println!(
            "{:<36}  {:<24}  {state:<8}  {:>7}  {seen:<20}  {version:<10}  {executors}",
            n.id, n.name, n.running_jobs
        );
    }
    Ok(())
}
