//! `cynode audit verify|export|checkpoint|keygen` as real processes on a real database: an intact log, a signed
//! checkpoint, JSON lines, and tampering (as a superuser would, behind the append-only trigger) named by sequence
//! number with a non-zero exit code.

use cynode_orchestrator::audit;
use cynode_tests::TestDb;
use cynode_tests::process::run_to_end;

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

#[tokio::test]
async fn verify_export_and_tampering_through_the_cli() {
    let db = TestDb::new().await;
    let (code, seed, stderr) = run_to_end("cynode", &["audit", "keygen"], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let seed = seed.trim().to_string();
    assert!(stderr.contains("public key") && !stderr.contains(&seed), "{stderr}");
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__AUDIT_SIGNING_KEY", seed.as_str())];

    entries(&db, 5).await;
    let (code, out, stderr) = run_to_end("cynode", &["audit", "checkpoint"], &env).await;
    assert_eq!((code, out.trim()), (0, "signed a checkpoint at entry 5"), "{stderr}");
    entries(&db, 2).await;
    let (code, out, stderr) = run_to_end("cynode", &["audit", "verify"], &env).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("intact: 7 entries, head 7; 1 signed checkpoints verified, the newest at entry 5"), "{out}");
    assert!(!out.contains(&seed) && !stderr.contains(&seed));

    // Without a trusted key the checkpoint is reported as not checked.
    let (code, _, stderr) = run_to_end("cynode", &["audit", "verify"], &env[..1]).await;
    assert_eq!(code, 0);
    assert!(stderr.contains("1 checkpoints were not checked"), "{stderr}");

    let (code, lines, stderr) = run_to_end("cynode", &["audit", "export", "--since", "1h"], &env[..1]).await;
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<serde_json::Value> =
        lines.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(rows.iter().map(|r| r["seq"].as_i64().expect("seq")).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    assert_eq!(rows[2]["subject"], "job-2");
    assert_eq!(rows[3]["prev_hash"], rows[2]["hash"], "the export carries the links");
    let (code, _, stderr) = run_to_end("cynode", &["audit", "export", "--since", "yesterday"], &env[..1]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("--since") && stderr.contains("neither an RFC 3339 time"), "{stderr}");

    // An UPDATE behind the trigger's back: verify names entry 3 and fails.
    let mut tx = db.pool.begin().await.expect("tx");
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update").execute(&mut *tx).await.expect("off");
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(&mut *tx).await.expect("tamper");
    tx.commit().await.expect("commit");
    let (code, _, stderr) = run_to_end("cynode", &["audit", "verify"], &env).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error: audit log broken at entry 3: entry 3 was altered"), "{stderr}");
    let (code, json, _) = run_to_end("cynode", &["audit", "verify", "--json"], &env).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert_eq!((v["ok"].as_bool(), v["broken_at"].as_i64()), (Some(false), Some(3)));

    // A DELETE: the missing entry is named.
    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&db.pool).await.expect("trigger still off");
    let (code, _, stderr) = run_to_end("cynode", &["audit", "verify"], &env).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("broken at entry 2: entry 2 is missing (the chain jumps to 3)"), "{stderr}");

    // A bad key is named without being echoed.
    let bad = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__AUDIT_SIGNING_KEY", "c2VjcmV0LXNob3J0")];
    let (code, _, stderr) = run_to_end("cynode", &["audit", "checkpoint"], &bad).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("security.audit_signing_key") && !stderr.contains("c2VjcmV0LXNob3J0"), "{stderr}");
}
