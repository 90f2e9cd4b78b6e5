//! Audit log benchmark (a harness, not a test): appends per second to the audit log, each in its own committed
//! transaction, with 1, 4 and 16 concurrent writers, while three chainers (as three replicas run) link them into
//! the hash chain; append → commit latency p50/p99; entries linked per second from the first append until the
//! last is in the chain; and, in the same run, the same transactions writing a row to a plain table (no chain) as
//! the baseline — the ratio is what auditing costs an action. Then `cynode audit verify`'s walk.
//!
//! PostgreSQL is the shared embedded test server (fsync on).
//!
//! `cargo bench -p cynode-orchestrator --bench audit [-- APPENDS]` (appends per writer count, default 3000).

use std::time::{Duration, Instant};

use cynode_orchestrator::audit;
use cynode_orchestrator::store::{self, PoolSettings};
use cynode_tests::TestDb;
use sqlx::PgPool;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Chained,
    Unchained,
}

async fn one(pool: &PgPool, how: Write, i: usize) -> Duration {
    let t = Instant::now();
    let mut tx = pool.begin().await.expect("tx");
    let detail = serde_json::json!({ "job": i, "verdict": "approved" });
    match how {
        Write::Chained => {
            audit::append(&mut tx, "U1", "approval.resolved", &i.to_string(), &detail).await.expect("append");
        }
        Write::Unchained => {
            sqlx::query("INSERT INTO bench_unchained (actor, action, subject, detail) VALUES ($1, $2, $3, $4)")
                .bind("U1")
                .bind("approval.resolved")
                .bind(i.to_string())
                .bind(&detail)
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
    }
    tx.commit().await.expect("commit");
    t.elapsed()
}

async fn run(pool: &PgPool, how: Write, writers: usize, total: usize) -> (f64, f64, f64) {
    let per = total / writers;
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                lat.push(one(&pool, how, w * per + i).await);
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("writer"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    ((per * writers) as f64 / secs, pct(0.50), pct(0.99))
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3000);
    let db = TestDb::new().await;
    let pool =
        store::connect(&db.url, &PoolSettings { max_connections: 24, ..PoolSettings::default() }).await.expect("pool");
    sqlx::query(
        "CREATE TABLE bench_unchained (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(),
         actor text NOT NULL, action text NOT NULL, subject text NOT NULL, detail jsonb NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("baseline table");
    // Warm up both paths.
    run(&pool, Write::Chained, 4, 200).await;
    run(&pool, Write::Unchained, 4, 200).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let chainers: Vec<_> = (0..3).map(|_| audit::spawn_chainer(pool.clone(), rx.clone())).collect();
    audit::flush(&pool).await.expect("link the warm-up");
    println!(
        "| writers | audited appends/s | p50 ms | p99 ms | linked/s | plain rows/s | p50 ms | p99 ms | audited/plain |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for writers in [1, 4, 16] {
        let start = Instant::now();
        let (c, c50, c99) = run(&pool, Write::Chained, writers, total).await;
        while sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM audit_pending)")
            .fetch_one(&pool)
            .await
            .expect("pending")
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let linked = (total / writers * writers) as f64 / start.elapsed().as_secs_f64();
        let (u, u50, u99) = run(&pool, Write::Unchained, writers, total).await;
        println!(
            "| {writers} | {c:.0} | {c50:.2} | {c99:.2} | {linked:.0} | {u:.0} | {u50:.2} | {u99:.2} | {:.2} |",
            c / u
        );
    }
    stop.send(true).expect("stop the chainers");
    for c in chainers {
        c.await.expect("chainer");
    }
    let t = Instant::now();
    let report = audit::verify(&pool, None).await.expect("verify");
    assert!(report.broken.is_none());
    println!(
        "\nverify: {} entries in {:.0} ms ({:.0} entries/s)",
        report.entries,
        t.elapsed().as_secs_f64() * 1000.0,
        report.entries as f64 / t.elapsed().as_secs_f64()
    );
}
