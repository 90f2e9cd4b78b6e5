use cynode_orchestrator::store;
use cynode_tests::TestDb;

#[tokio::test]
async fn migrates_an_empty_database_and_is_idempotent() {
    let db = TestDb::empty().await;
    let before = store::readiness(&db.pool).await.expect("readiness");
    assert_eq!(before.applied_migration, None);
    assert!(!before.is_ready());

    store::migrate(&db.pool).await.expect("first migration");
    let after = store::readiness(&db.pool).await.expect("readiness");
    assert!(after.is_ready(), "{after:?}");
    assert_eq!(after.pgvector.as_deref(), Some("0.8.6"));

    // An already-migrated database: nothing to do, nothing changes.
    store::migrate(&db.pool).await.expect("second migration");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&db.pool).await.expect("count");
    assert_eq!(count, i64::try_from(store::MIGRATOR.iter().count()).expect("count"));
}

#[tokio::test]
async fn concurrent_migrations_do_not_conflict() {
    let db = TestDb::empty().await;
    let (a, b) = tokio::join!(store::migrate(&db.pool), store::migrate(&db.pool));
    a.expect("first");
    b.expect("second");
    assert!(store::readiness(&db.pool).await.expect("readiness").is_ready());
}

#[tokio::test]
async fn schema_has_every_table_and_the_hnsw_index() {
    let db = TestDb::new().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    for t in [
        "installs",
        "inbound_events",
        "conversations",
        "tasks",
        "jobs",
        "job_output_chunks",
        "approvals",
        "nodes",
        "node_keys",
        "stream_records",
        "subscriptions",
        "deliveries",
        "api_tokens",
        "audit_log",
        "memories",
        "templates",
        "policy_rules",
    ] {
        assert!(tables.iter().any(|x| x == t), "missing table {t}: {tables:?}");
    }
    // The 384-d model's partial HNSW index on the fixed-size cast (so the shared `vector` column keeps an index).
    let index: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'memories' AND indexdef LIKE '%multilingual-e5-small%'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("index");
    assert!(index.contains("hnsw") && index.contains("vector(384)") && index.contains("vector_cosine_ops"), "{index}");
}

#[tokio::test]
async fn vectors_round_trip_through_the_hnsw_index() {
    let db = TestDb::new().await;
    for (i, content) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let mut v = vec![0.0f32; 384];
        v[i] = 1.0;
        sqlx::query(
            "INSERT INTO memories (id, scope, author, text, provenance, embedding, embedding_model)
             VALUES ($1, 'install', 'U1', $2, 'user', $3, 'multilingual-e5-small')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(content)
        .bind(pgvector::Vector::from(v))
        .execute(&db.pool)
        .await
        .expect("insert");
    }
    let mut q = vec![0.0f32; 384];
    q[1] = 0.9;
    q[2] = 0.1;
    let nearest: String = sqlx::query_scalar(
        "SELECT text FROM memories WHERE embedding_model = 'multilingual-e5-small'
         ORDER BY embedding::vector(384) <=> $1 LIMIT 1",
    )
    .bind(pgvector::Vector::from(q))
    .fetch_one(&db.pool)
    .await
    .expect("query");
    assert_eq!(nearest, "beta");
}

#[tokio::test]
async fn inbound_delivery_key_is_unique() {
    let db = TestDb::new().await;
    let install = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'slack', 'T1', 'acme')")
        .bind(install)
        .execute(&db.pool)
        .await
        .expect("install");
    let insert = || {
        sqlx::query(
            "INSERT INTO inbound_events (id, install_id, platform, delivery_id, kind, payload)
             VALUES ($1, $2, 'slack', 'Ev1', 'mention', '{}')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(install)
        .execute(&db.pool)
    };
    insert().await.expect("first delivery");
    let dup = insert().await.expect_err("duplicate delivery must be refused");
    assert!(dup.to_string().contains("inbound_events_platform_install_id_delivery_id_key"), "{dup}");
}
