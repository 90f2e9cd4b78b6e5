//! `cynode memory …`: memories through the user API, as the token's identity. Human output by default, one JSON
//! document with `--json`.

use std::io::Read as _;

use serde_json::{Value, json};

use super::client::ApiClient;
use crate::cli::MemoryCommand;
use crate::routes::api::memories::{CountResponse, MAX_IMPORT, MemoryList};
use cynode_orchestrator::memory::Memory;

/// Runs `cynode memory …`.
///
/// # Errors
/// API failures and bad arguments, phrased for the user.
pub async fn run(cmd: MemoryCommand, api: &ApiClient) -> anyhow::Result<()> {
    let json = cmd.client().json;
    match cmd {
        MemoryCommand::Add { text, scope, pinned, ttl_days, .. } => {
            let body = json!({ "text": text.join(" "), "scope": scope, "pinned": pinned, "ttl_days": ttl_days });
            let m: Memory = api.post("/v1/memories", &body).await?;
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                let later =
                    if m.embedding_model.is_none() { " (not embedded yet: keyword recall until it is)" } else { "" };
                if m.awaiting_approval {
                    println!(
                        "proposed {} for the whole install: no one recalls it until an admin approves it \
                         (cynode memory approve {})",
                        m.id, m.id
                    );
                } else {
                    println!("remembered {} for scope {}{later}", m.id, m.scope.as_str());
                }
            }
        }
        MemoryCommand::Search { query, limit, .. } => {
            let q = query.join(" ");
            let path = format!(
                "/v1/memories?q={}&limit={limit}",
                url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
            );
            let list: MemoryList = api.get(&path).await?;
            print_list(&list, json)?;
            if !json && let Some(n) = &list.notice {
                eprintln!("note: {n}");
            }
        }
        MemoryCommand::List { limit, proposed: false, .. } => {
            let list: MemoryList = api.get(&format!("/v1/memories?limit={limit}")).await?;
            print_list(&list, json)?;
        }
        MemoryCommand::List { proposed: true, .. } => {
            let list: MemoryList = api.get("/v1/memories/proposals").await?;
            print_list(&list, json)?;
            if !json && !list.memories.is_empty() {
                println!("decide with: cynode memory approve ID / cynode memory deny ID");
            }
        }
        MemoryCommand::Approve { id, .. } => {
            let m: Memory = api.post(&format!("/v1/memories/{id}/approve"), &json!({})).await?;
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                println!("approved {}: everyone in the install recalls it now (proposed by {})", m.id, m.author);
            }
        }
        MemoryCommand::Deny { id, .. } => {
            let n: CountResponse = api.post(&format!("/v1/memories/{id}/deny"), &json!({})).await?;
            if json {
                println!("{}", serde_json::to_string(&n)?);
            } else {
                println!("dropped the proposed memory {id}");
            }
        }
        MemoryCommand::Forget { id, user, label, .. } => {
            let n: CountResponse = match (id, user, label) {
                (Some(id), _, _) => api.delete_json(&format!("/v1/memories/{id}")).await?,
                (None, Some(u), _) => api.post("/v1/memories/forget", &json!({ "user": u })).await?,
                (None, None, Some(l)) => api.post("/v1/memories/forget", &json!({ "label": l })).await?,
                (None, None, None) => anyhow::bail!("give a memory id, --user or --label"),
            };
            if json {
                println!("{}", serde_json::to_string(&n)?);
            } else {
                println!("forgot {} {}", n.count, if n.count == 1 { "memory" } else { "memories" });
            }
        }
        MemoryCommand::Import { file, label, .. } => {
            let mut text = String::new();
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            }
            let label = label.unwrap_or_else(|| {
                file.file_name().map_or_else(|| "stdin".into(), |n| n.to_string_lossy().into_owned())
            });
            let entries = parse_import(&text)?;
            let mut total = 0;
            for chunk in entries.chunks(MAX_IMPORT) {
                let n: CountResponse =
                    api.post("/v1/memories/import", &json!({ "label": label, "memories": chunk })).await?;
                total += n.count;
            }
            if json {
                println!("{}", serde_json::to_string(&CountResponse { count: total })?);
            } else {
                println!(
                    "imported {total} memories under label `{label}` (forget them with: cynode memory forget --label {label})"
                );
            }
        }
    }
    Ok(())
}

/// One memory a line: a JSON object (`{"text": …, "scope": …}`) or plain text. Blank lines and `#` comments are
/// skipped.
fn parse_import(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('{') {
            let v: Value =
                serde_json::from_str(line).map_err(|e| anyhow::anyhow!("line {}: not a JSON object ({e})", i + 1))?;
            out.push(v);
        } else {
            out.push(json!({ "text": line }));
        }
    }
    if out.is_empty() {
        anyhow::bail!("the file holds no memories (one text or JSON object a line)");
    }
    Ok(out)
}

fn print_list(list: &MemoryList, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(list)?);
        return Ok(());
    }
    if list.memories.is_empty() {
        println!("No memories.");
        return Ok(());
    }
    println!("{:<36}  {:<7}  {:<10}  TEXT", "ID", "SCOPE", "PROVENANCE");
    for m in &list.memories {
        let text: String = m.text.chars().take(100).collect();
        let prov = if m.trusted { m.provenance.as_str().to_owned() } else { format!("{}*", m.provenance.as_str()) };
        println!("{:<36}  {:<7}  {:<10}  {text}", m.id, m.scope.as_str(), prov);
    }
    if list.memories.iter().any(|m| !m.trusted) {
        println!("* written by the agent or from tool output: unverified");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines() {
        let v = parse_import("# notes\nplain fact\n\n{\"text\": \"json fact\", \"scope\": \"install\"}\n").expect("ok");
        assert_eq!(v, vec![json!({ "text": "plain fact" }), json!({ "text": "json fact", "scope": "install" })]);
        assert!(parse_import("{oops").expect_err("bad").to_string().contains("line 1"));
        assert!(parse_import("\n# only\n").expect_err("empty").to_string().contains("no memories"));
    }
}
