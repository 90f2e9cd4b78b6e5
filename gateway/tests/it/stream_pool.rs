//! The stream worker's database connections are its own and bounded, so a reply backlog cannot take the
//! database away from the ingress path.

use std::time::Duration;

use cynode_gateway::server::{CoreSettings, RouterSettings};

use crate::ingress_support::{IngressApp, SLACK_TEAM, mention, roomy};

const JSON: &str = "application/json";

async fn connections(app: &IngressApp, name: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = '{name}'"
    ))
    .await
}

#[tokio::test]
async fn a_reply_backlog_uses_at_most_the_stream_workers_own_connections() {
    let router = RouterSettings { max_body_bytes: 1024 * 1024, request_timeout: Duration::from_secs(10) };
    let core = CoreSettings { ingress: roomy(), stream_connections: 2, ..CoreSettings::default() };
    let app = IngressApp::spawn_core(router, core).await;
    // `help` is answered at ingress: every mention is a reply for the stream worker to post (to a Slack it
    // cannot reach, so the streams stay busy).
    for i in 0..120 {
        let body = mention(&format!("EvPOOL{i}"), SLACK_TEAM, &format!("U{i}"), "help", None);
        let r = app.slack("/slack/events", JSON, &body, app.now()).await;
        assert_eq!(r.status(), 200);
    }
    let (mut most, mut ingress) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        most = most.max(connections(&app, "cynode stream").await);
        ingress = ingress.max(connections(&app, "cynode ingress").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most >= 1, "the stream worker works through its own pool");
    assert!(most <= 2, "the stream worker held {most} connections, more than its 2");
    assert!(ingress >= 1, "the ingress writers have their own, named connections");
    let open: i64 = app.count("SELECT count(*) FROM stream_records").await;
    assert_eq!(open, 120, "every reply has its stream");
}
