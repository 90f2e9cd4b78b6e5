//! `status`: the nodes (online or not, what they run, when they were seen, their version) and the queue, with
//! why work waits when no online node could take it.

use cynode_protocol::{ExecutorKind, Requirements};

use super::{CommandError, Commands, Reply, reply};
use crate::dispatch::feasible;

/// Most nodes listed by name; the count covers all.
const NODES_LISTED: usize = 10;
/// Most kinds of waiting work explained.
const GROUPS_EXPLAINED: i64 = 20;

#[derive(sqlx::FromRow)]
struct NodeRow {
    name: String,
    online: bool,
    running: i64,
    seen_s: f64,
    agent_version: Option<String>,
}

impl Commands {
    pub(super) async fn status(&self) -> Result<Reply, CommandError> {
        let nodes: Vec<NodeRow> = sqlx::query_as(
            "SELECT n.name, n.last_seen_at > now() - $1 * interval '1 second' AS online,
                    (SELECT count(*) FROM jobs j WHERE j.node_id = n.id AND j.state IN ('leased', 'running'))
                        AS running,
                    extract(epoch FROM now() - n.last_seen_at)::float8 AS seen_s, n.agent_version
             FROM nodes n JOIN node_keys k ON k.id = n.key_id
             WHERE k.revoked_at IS NULL ORDER BY n.last_seen_at DESC",
        )
        .bind(crate::nodes::online_within_s())
        .fetch_all(&self.pool)
        .await?;
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM jobs WHERE state IN ('queued', 'leased', 'running', 'awaiting_approval')
             GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        let get = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        let online = nodes.iter().filter(|n| n.online).count();
        let mut lines = vec![format!(
            "Nodes online: {online} of {}. Jobs: {} queued, {} running, {} awaiting approval.",
            nodes.len(),
            get("queued"),
            get("leased") + get("running"),
            get("awaiting_approval")
        )];
        for n in nodes.iter().take(NODES_LISTED) {
            let state = if n.online { "online" } else { "offline" };
            let version = n.agent_version.as_deref().map(|v| format!(" · cynode-node {v}")).unwrap_or_default();
            lines.push(format!("• `{}` {state} · {} running · seen {} ago{version}", n.name, n.running, ago(n.seen_s)));
        }
        if get("queued") > 0 {
            lines.extend(self.waiting().await?);
        }
        Ok(reply(lines.join("\n")))
    }

    /// One line per kind of queued work that no online node could take: how many, and why.
    async fn waiting(&self) -> Result<Vec<String>, CommandError> {
        let groups: Vec<(String, serde_json::Value, i64)> = sqlx::query_as(
            "SELECT executor, requirements - 'prefer_node', count(*) FROM jobs WHERE state = 'queued'
             GROUP BY 1, 2 ORDER BY 3 DESC LIMIT $1",
        )
        .bind(GROUPS_EXPLAINED)
        .fetch_all(&self.pool)
        .await?;
        let caps = feasible::online_capabilities(&self.pool).await?;
        let mut lines = Vec::new();
        for (executor, requirements, n) in groups {
            let (Some(executor), Ok(req)) =
                (ExecutorKind::parse(&executor), serde_json::from_value::<Requirements>(requirements))
            else {
                continue;
            };
            if let Err(why) = feasible::evaluate(&caps, executor, &req) {
                lines.push(format!("⚠️ {n} queued: {why}"));
            }
        }
        Ok(lines)
    }
}

/// Seconds as people read them ("4 s", "3 min", "2 h").
fn ago(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}
