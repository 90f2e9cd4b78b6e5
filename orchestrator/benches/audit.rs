//! Audit log benchmark (a harness, not a test): appends per second to the hash-chained log, each in its own
//! committed transaction, with 1, 4 and 16 concurrent writers; append → commit latency p50/p99; and, in the same
//! run, the same transactions writing an unchained row (no lock, no hash) as the baseline — the ratio is what the
//! chain's lock costs. Then `cynode audit verify`'s walk: entries verified per second.
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
    println!(
        "| writers | chained appends/s | p50 ms | p99 ms | unchained rows/s | p50 ms | p99 ms | chained/unchained |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for writers in [1, 4, 16] {
        let (c, c50, c99) = run(&pool, Write::Chained, writers, total).await;
        let (u, u50, u99) = run(&pool, Write::Unchained, writers, total).await;
        println!("| {writers} | {c:.0} | {c50:.2} | {c99:.2} | {u:.0} | {u50:.2} | {u99:.2} | {:.2} |", c / u);
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
