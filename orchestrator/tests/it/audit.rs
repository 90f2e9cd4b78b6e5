use cynode_orchestrator::audit;
use cynode_tests::TestDb;

#[tokio::test]
async fn chain_links_entries_and_refuses_rewrites() {
    let db = TestDb::new().await;
    for i in 0..3 {
        let mut tx = db.pool.begin().await.expect("tx");
        let seq = audit::append(&mut tx, "U1", "job.approve", &format!("job-{i}"), &serde_json::json!({"i": i}))
            .await
            .expect("append");
        tx.commit().await.expect("commit");
        assert_eq!(seq, i + 1);
    }
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), None);

    let update = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(&db.pool).await;
    assert!(update.expect_err("append-only").to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM audit_log WHERE seq = 1").execute(&db.pool).await;
    assert!(delete.is_err());

    // Tampering behind the trigger's back (as a superuser would) is detected by the chain.
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update").execute(&db.pool).await.expect("disable");
    sqlx::query("UPDATE audit_log SET subject = 'job-x' WHERE seq = 2").execute(&db.pool).await.expect("tamper");
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), Some(2));
}

#[tokio::test]
async fn concurrent_appends_keep_one_linear_chain() {
    let db = TestDb::new().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("tx");
            audit::append(&mut tx, "node", "lease", &i.to_string(), &serde_json::json!({})).await.expect("append");
            tx.commit().await.expect("commit");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&db.pool).await.expect("count");
    assert_eq!(n, 16);
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), None);
}
