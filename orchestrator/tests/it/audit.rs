use cynode_orchestrator::audit;
use cynode_tests::TestDb;

#[tokio::test]
async fn chain_links_entries_and_refuses_rewrites() {
    let db = TestDb::new().await;
    for i in 0..3 {
        let mut tx = db.pool.begin().await.expect("tx");
        audit::append(&mut tx, "U1", "job.approve", &format!("job-{i}"), &serde_json::json!({"i": i}))
            .await
            .expect("append");
        tx.commit().await.expect("commit");
    }
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), None);
    let subjects: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.expect("chain");
    assert_eq!(subjects, ["job-0", "job-1", "job-2"], "chained in the order appended");

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
    audit::flush(&db.pool).await.expect("link");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&db.pool).await.expect("count");
    assert_eq!(n, 16);
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), None);
}

async fn entries(db: &TestDb, n: i64) {
    for i in 0..n {
        let mut tx = db.pool.begin().await.expect("tx");
        audit::append(&mut tx, "U1", "job.cancel", &format!("job-{i}"), &serde_json::json!({ "i": i }))
            .await
            .expect("append");
        tx.commit().await.expect("commit");
    }
    audit::flush(&db.pool).await.expect("link");
}

/// Bypasses the append-only trigger, as a database superuser could.
async fn as_superuser(db: &TestDb, sql: &str) {
    let mut tx = db.pool.begin().await.expect("tx");
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update").execute(&mut *tx).await.expect("off");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut *tx).await.expect("tamper");
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update").execute(&mut *tx).await.expect("on");
    tx.commit().await.expect("commit");
}

fn key() -> audit::CheckpointKey {
    audit::CheckpointKey::from_base64(&audit::CheckpointKey::generate()).expect("key")
}

#[tokio::test]
async fn a_deleted_entry_is_named_by_its_sequence_number() {
    let db = TestDb::new().await;
    entries(&db, 6).await;
    as_superuser(&db, "DELETE FROM audit_log WHERE seq = 4").await;
    let report = audit::verify(&db.pool, None).await.expect("verify");
    assert_eq!(report.broken, Some(audit::Broken::Missing { seq: 4, found: Some(5) }));
    assert_eq!(report.entries, 3, "the walk stops at the first broken link");
    // Deleting the first entry is caught too.
    let db = TestDb::new().await;
    entries(&db, 3).await;
    as_superuser(&db, "DELETE FROM audit_log WHERE seq = 1").await;
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), Some(1));
}

#[tokio::test]
async fn a_consistently_rewritten_chain_is_caught_by_the_signed_checkpoint() {
    let db = TestDb::new().await;
    let key = key();
    entries(&db, 4).await;
    assert_eq!(audit::checkpoint::checkpoint(&db.pool, &key).await.expect("checkpoint"), Some(4));
    assert_eq!(audit::checkpoint::checkpoint(&db.pool, &key).await.expect("again"), None, "head unchanged");
    entries(&db, 3).await;
    assert_eq!(audit::checkpoint::checkpoint(&db.pool, &key).await.expect("checkpoint"), Some(7));
    let trusted = key.verifying_key();
    let ok = audit::verify(&db.pool, Some(&trusted)).await.expect("verify");
    assert_eq!((ok.broken, ok.entries, ok.checkpoints_checked, ok.last_checkpoint), (None, 7, 2, Some(7)));

    // Rewrite entry 2 and recompute every hash after it: the chain alone looks intact…
    type Row = (i64, chrono::DateTime<chrono::Utc>, String, String, String, serde_json::Value);
    let rows: Vec<Row> = sqlx::query_as("SELECT seq, at, actor, action, subject, detail FROM audit_log ORDER BY seq")
        .fetch_all(&db.pool)
        .await
        .expect("rows");
    let mut prev = vec![0u8; 32];
    let mut sql = String::new();
    for (seq, at, actor, action, subject, detail) in rows {
        let subject = if seq == 2 { "job-innocent".to_string() } else { subject };
        let hash = audit::entry_hash(&prev, seq, &at, &actor, &action, &subject, &detail);
        sql.push_str(&format!(
            "UPDATE audit_log SET subject = '{subject}', prev_hash = '\\x{}', hash = '\\x{}' WHERE seq = {seq};",
            hex::encode(&prev),
            hex::encode(&hash)
        ));
        prev = hash;
    }
    for stmt in sql.split_terminator(';') {
        as_superuser(&db, stmt).await;
    }
    assert_eq!(audit::verify(&db.pool, None).await.expect("verify").broken, None, "the chain is self-consistent");
    // …but the first checkpoint after the change no longer matches what was signed.
    let report = audit::verify(&db.pool, Some(&trusted)).await.expect("verify");
    match report.broken {
        Some(audit::Broken::Checkpoint { seq: 4, reason }) => {
            assert!(reason.contains("rewritten at or before entry 4"), "{reason}");
        }
        other => panic!("expected the checkpoint at 4 to fail: {other:?}"),
    }
}

#[tokio::test]
async fn a_cut_tail_and_a_forged_checkpoint_are_caught() {
    let db = TestDb::new().await;
    let key = key();
    entries(&db, 5).await;
    audit::checkpoint::checkpoint(&db.pool, &key).await.expect("checkpoint");
    as_superuser(&db, "DELETE FROM audit_log WHERE seq >= 4").await;
    assert_eq!(audit::verify(&db.pool, None).await.expect("verify").broken, None, "the rest still links");
    let report = audit::verify(&db.pool, Some(&key.verifying_key())).await.expect("verify");
    match report.broken {
        Some(audit::Broken::Checkpoint { seq: 5, reason }) => {
            assert!(reason.contains("entries were removed"), "{reason}")
        }
        other => panic!("expected the cut tail to be caught: {other:?}"),
    }

    // A checkpoint signed by a key nobody trusts.
    let db = TestDb::new().await;
    entries(&db, 2).await;
    audit::checkpoint::checkpoint(&db.pool, &self::key()).await.expect("rogue checkpoint");
    let report = audit::verify(&db.pool, Some(&key.verifying_key())).await.expect("verify");
    assert!(matches!(report.broken, Some(audit::Broken::Checkpoint { seq: 2, .. })), "{report:?}");
    // Without a trusted key checkpoints are reported as unchecked, never as verified.
    let report = audit::verify(&db.pool, None).await.expect("verify");
    assert_eq!((report.broken, report.checkpoints_checked, report.checkpoints_unchecked), (None, 0, 1));
}

#[tokio::test]
async fn checkpoints_are_append_only_too() {
    let db = TestDb::new().await;
    entries(&db, 1).await;
    audit::checkpoint::checkpoint(&db.pool, &key()).await.expect("checkpoint");
    let e = sqlx::query("DELETE FROM audit_checkpoints").execute(&db.pool).await.expect_err("append-only");
    assert!(e.to_string().contains("append-only"), "{e}");
}

/// The chain's lock is never held across a caller's commit: a transaction that appended and is still open (a slow
/// approval, a long command) does not hold up another action's append and commit. (With the entry chained inside
/// the caller's transaction under the lock, as before, the second commit waited for the first transaction.)
#[tokio::test]
async fn an_open_transaction_that_appended_does_not_hold_up_other_appends() {
    let db = TestDb::new().await;
    let mut slow = db.pool.begin().await.expect("tx");
    audit::append(&mut slow, "U1", "job.submitted", "slow", &serde_json::json!({})).await.expect("append");
    let quick = async {
        let mut tx = db.pool.begin().await.expect("tx");
        audit::append(&mut tx, "U2", "job.submitted", "quick", &serde_json::json!({})).await.expect("append");
        tx.commit().await.expect("commit");
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), quick).await.expect("the quick append waited");
    // The chainer links what is committed and leaves the open transaction's entry for later.
    audit::chain_pending(&db.pool, audit::CHAIN_BATCH).await.expect("chain");
    let chained: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.expect("chain");
    assert_eq!(chained, ["quick"]);
    slow.commit().await.expect("commit");
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), None);
    let chained: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.expect("chain");
    assert_eq!(chained, ["quick", "slow"], "chained once each, in the order they were committed and linked");
}

/// Chainers racing (every replica runs one) while writers append: every committed entry is chained exactly once
/// into one linear chain, and a rolled-back action leaves no entry.
#[tokio::test]
async fn racing_chainers_link_every_committed_entry_once() {
    let db = TestDb::new().await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let chainers: Vec<_> = (0..3).map(|_| audit::spawn_chainer(db.pool.clone(), rx.clone())).collect();
    let mut writers = Vec::new();
    for w in 0..8 {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                let mut tx = pool.begin().await.expect("tx");
                let subject = format!("w{w}-{i}");
                audit::append(&mut tx, "node", "job.submitted", &subject, &serde_json::json!({ "i": i }))
                    .await
                    .expect("append");
                if i % 10 == 9 {
                    tx.rollback().await.expect("rollback");
                } else {
                    tx.commit().await.expect("commit");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    audit::flush(&db.pool).await.expect("link");
    stop.send(true).expect("stop");
    for c in chainers {
        c.await.expect("chainer");
    }
    let (n, distinct, top): (i64, i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT subject), max(seq) FROM audit_log")
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!((n, distinct, top), (8 * 45, 8 * 45, 8 * 45), "each committed entry once, no gap");
    let rolled_back: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_trail WHERE subject LIKE '%9'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(rolled_back, 0);
    assert_eq!(audit::verify_chain(&db.pool).await.expect("verify"), None);
}
