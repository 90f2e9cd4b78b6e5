//! Node state that tells the truth (online while it polls, offline soon after it stops, its running jobs and
//! version), and a task shown `running` while a node holds its job.

use std::time::Duration;

use cynode_orchestrator::nodes;
use cynode_orchestrator::views::{self, Scope};
use cynode_protocol::RegisterRequest;
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::support::*;

async fn last_seen_back(pool: &sqlx::PgPool, node: Uuid, secs: i64) {
    sqlx::query("UPDATE nodes SET last_seen_at = now() - $2 * interval '1 second' WHERE id = $1")
        .bind(node)
        .bind(secs)
        .execute(pool)
        .await
        .expect("age the node");
}

async fn view(pool: &sqlx::PgPool, node: Uuid) -> views::NodeView {
    views::nodes(pool).await.expect("nodes").into_iter().find(|n| n.id == node).expect("listed")
}

#[tokio::test]
async fn a_polling_node_is_online_with_its_jobs_and_version_and_offline_once_it_stops() {
    let db = TestDb::new().await;
    let key = "key-for-poller-0123456789abcdef";
    node_key(&db.pool, "k-poller", key, &["host"]).await;
    let req = RegisterRequest {
        protocol_versions: vec![1, 2],
        name: "poller".into(),
        capabilities: host_caps(),
        agent_version: Some("9.8.7".into()),
    };
    let node = nodes::register(&db.pool, key, &req).await.expect("register").node_id;
    let d = dispatcher(&db.pool);

    // Registered long ago, then polling: the lease loop records that it was seen.
    last_seen_back(&db.pool, node, 3600).await;
    assert!(!view(&db.pool, node).await.online);
    let job = enqueue(&db.pool, &host_job("echo hi")).await;
    let leases = d.lease(node, 4, Duration::ZERO).await.expect("lease");
    assert_eq!(leases.len(), 1);
    let v = view(&db.pool, node).await;
    assert!(v.online, "{v:?}");
    assert!(chrono::Utc::now() - v.last_seen_at < chrono::TimeDelta::seconds(60), "{v:?}");
    assert_eq!((v.running_jobs, v.protocol, v.agent_version.as_deref()), (1, 2, Some("9.8.7")));
    assert_eq!(job_state(&db.pool, job).await.0, "leased");

    // Recorded at most every few seconds per node: an immediate second poll writes nothing.
    last_seen_back(&db.pool, node, 5).await;
    d.lease(node, 4, Duration::ZERO).await.expect("lease");
    let v = view(&db.pool, node).await;
    assert!(chrono::Utc::now() - v.last_seen_at >= chrono::TimeDelta::seconds(4), "throttled: {v:?}");
    assert!(v.online, "5 s ago is still online: {v:?}");

    // A node silent for longer than the online window is offline (in the view and in `status`).
    last_seen_back(&db.pool, node, 11).await;
    assert!(!view(&db.pool, node).await.online);
}

#[tokio::test]
async fn heartbeats_keep_a_busy_node_online() {
    let db = TestDb::new().await;
    let node = node(&db.pool, "busy", host_caps()).await;
    let d = dispatcher(&db.pool);
    enqueue(&db.pool, &host_job("sleep 60")).await;
    let l = d.lease(node, 1, Duration::ZERO).await.expect("lease").remove(0);
    // A node busy with its slots full sends heartbeats, not lease requests.
    let other = cynode_orchestrator::dispatch::Dispatcher::new(db.pool.clone(), fast());
    last_seen_back(&db.pool, node, 3600).await;
    let r = other
        .heartbeat(
            node,
            &[cynode_protocol::LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token }],
        )
        .await
        .expect("heartbeat");
    assert_eq!(r.extended, vec![l.job_id]);
    assert!(view(&db.pool, node).await.online);
}

#[tokio::test]
async fn a_task_shows_running_while_a_node_holds_its_job() {
    let db = TestDb::new().await;
    let node = node(&db.pool, "n1", host_caps()).await;
    let d = dispatcher(&db.pool);
    let job = enqueue(&db.pool, &host_job("sleep 1")).await;
    let task: Uuid =
        sqlx::query_scalar("SELECT task_id FROM jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.expect("task");
    let shown = |t: Option<views::TaskView>| t.expect("task").state;
    assert_eq!(shown(views::task(&db.pool, Scope::default(), task).await.expect("read")), "queued");
    let leases = d.lease(node, 1, Duration::ZERO).await.expect("lease");
    assert_eq!(leases.len(), 1);
    assert_eq!(shown(views::task(&db.pool, Scope::default(), task).await.expect("read")), "running");
    let listed = views::tasks(&db.pool, Scope::default(), None, 10).await.expect("list");
    assert_eq!(listed.iter().find(|t| t.id == task).expect("listed").state, "running");
    // The stored state is untouched (the claim never takes the task's row lock).
    let stored: String =
        sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1").bind(task).fetch_one(&db.pool).await.expect("s");
    assert_eq!(stored, "queued");
}
