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
    println!("{:<36}  {:<24}  {:<8}  EXECUTORS", "NODE", "NAME", "STATE");
    for n in &list.nodes {
        let executors = n.capabilities.get("executors").map(ToString::to_string).unwrap_or_default();
        let state = if n.online { "online" } else { "offline" };
        println!("{:<36}  {:<24}  {state:<8}  {executors}", n.id, n.name);
    }
    Ok(())
}
