use crate::support::TestApp;

#[tokio::test]
async fn healthz_readyz_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), 200);

    let r = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"]["pgvector"], "0.8.6");

    let r = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(text.contains(r#"cynode_http_requests_total{route="/readyz",method="GET",status="200"} 1"#), "{text}");
}

#[tokio::test]
async fn readyz_reports_an_unmigrated_database() {
    let app = TestApp::spawn().await;
    sqlx::query("DELETE FROM _sqlx_migrations").execute(&app.db.pool).await.expect("forget migrations");
    let r = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["reason"], "migrations are not applied");
}

#[tokio::test]
async fn readyz_reports_a_lost_database_without_details() {
    let app = TestApp::spawn().await;
    app.db.pool.close().await;
    let r = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    let body = r.text().await.expect("text");
    assert!(body.contains("database unreachable") && !body.contains("postgres://"), "{body}");
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/nope")).send().await.expect("get");
    assert_eq!(r.status(), 404);
}
