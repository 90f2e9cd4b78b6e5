//! Hybrid recall: a filtered HNSW kNN on the current model's vectors and a full-text ranking, both under the
//! viewer's scope filter, fused by reciprocal rank fusion (RRF, k = 60), weighted by temporal decay, optionally
//! re-ranked for diversity (MMR).
//!
//! The vector half runs with pgvector 0.8's iterative index scans (`hnsw.iterative_scan = relaxed_order`): a
//! scope filter that removes most of the nearest neighbours makes the index scan continue instead of returning
//! too few rows, so filtered searches keep their recall (see docs/benchmarks.md). The model's name and
//! dimension are written into the statement, so the planner can match the model's partial expression index.

use sqlx::Row;

use super::store::{COLUMNS, ensure_model, from_row, visible};
use super::{InputKind, Memories, Memory, MemoryError, Viewer, clip};

/// RRF's constant: ranks beyond a few dozen add little.
const RRF_K: f64 = 60.0;

/// A recall request.
#[derive(Debug, Clone)]
pub struct Recall {
    /// What to look for.
    pub query: String,
    /// Memories to return (at most 50).
    pub limit: usize,
}

/// How a recall was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Recalled {
    /// The memories, best first, with their scores.
    pub memories: Vec<(Memory, f64)>,
    /// Vectors took part (false: keyword matches only).
    pub hybrid: bool,
    /// Why recall was keyword-only, for the user (`None` when hybrid).
    pub notice: Option<String>,
}

/// One candidate before scoring.
struct Candidate {
    memory: Memory,
    vector_rank: Option<i64>,
    keyword_rank: Option<i64>,
    embedding: Option<Vec<f32>>,
}

impl Memories {
    /// Recalls what `viewer` may see that matches `req`.
    ///
    /// # Errors
    /// [`MemoryError::Invalid`] for an empty or oversized query; store failures.
    pub async fn recall(&self, viewer: &Viewer, req: &Recall) -> Result<Recalled, MemoryError> {
        let query = req.query.trim();
        if query.is_empty() {
            return Err(MemoryError::Invalid("recall needs something to look for, e.g. `recall deploy key`".into()));
        }
        if query.chars().count() > super::MAX_TEXT {
            return Err(MemoryError::Invalid(format!("a query may be at most {} characters", super::MAX_TEXT)));
        }
        let (vector, notice) = self.query_vector(query).await?;
        let limit = req.limit.clamp(1, 50);
        let candidates = self.candidates(viewer, query, vector.as_ref()).await?;
        let hybrid = vector.is_some();
        let mut scored = score(candidates, self.settings().half_life.as_secs_f64());
        if let (Some(lambda), true) = (self.settings().mmr_lambda, hybrid) {
            scored = mmr(scored, lambda, limit);
        }
        scored.truncate(limit);
        Ok(Recalled { memories: scored.into_iter().map(|(c, s)| (c.memory, s)).collect(), hybrid, notice })
    }

    /// The query's vector with the model's dimension, or why there is none.
    async fn query_vector(&self, query: &str) -> Result<(Option<(Vec<f32>, String)>, Option<String>), MemoryError> {
        let Some(embedder) = self.embedder() else {
            return Ok((None, Some("no embedder is configured, so these are keyword matches only".into())));
        };
        let texts = [query.to_owned()];
        let result =
            tokio::time::timeout(self.settings().inline_embed_timeout, embedder.embed(&texts, InputKind::Query)).await;
        let vector = match result {
            Ok(Ok(mut v)) => v.pop().unwrap_or_default(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recall falls back to keyword matches");
                return Ok((None, Some(format!("{e}, so these are keyword matches only"))));
            }
            Err(_) => {
                tracing::warn!("the embedder timed out; recall falls back to keyword matches");
                return Ok((
                    None,
                    Some("the embedder did not answer in time, so these are keyword matches only".into()),
                ));
            }
        };
        match ensure_model(self.pool(), embedder.model(), vector.len()).await? {
            Ok(()) => Ok((Some((vector, embedder.model().to_owned())), None)),
            Err(e) => Ok((None, Some(format!("{e}, so these are keyword matches only")))),
        }
    }

    async fn candidates(
        &self,
        viewer: &Viewer,
        query: &str,
        vector: Option<&(Vec<f32>, String)>,
    ) -> Result<Vec<Candidate>, MemoryError> {
        let filter = visible(1);
        // The query's words, OR-ed (any word may match; more matches rank higher), as lexemes that are not
        // normalised again.
        let keyword = format!(
            "kw AS (SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM (
               SELECT m.id, ts_rank_cd(m.tsv, q.q) AS rank FROM memories m,
                 (SELECT (SELECT string_agg('''' || replace(replace(l, '\\', '\\\\'), '''', '''''') || '''', ' | ')
                          FROM unnest(tsvector_to_array(to_tsvector('english', $6))) l)::tsquery AS q) q
               WHERE m.tsv @@ q.q AND {filter} ORDER BY rank DESC LIMIT $5) k)"
        );
        let mut tx = self.pool().begin().await?;
        let rows = if let Some((v, model)) = vector {
            let dims = v.len();
            let quoted = model.replace('\'', "''");
            let ef = self.settings().ef_search.clamp(1, 1000);
            sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order").execute(&mut *tx).await?;
            sqlx::query(safe_sql!("SET LOCAL hnsw.ef_search = {ef}")).execute(&mut *tx).await?;
            let knn = knn_sql(dims, model, 7);
            let sql = format!(
                "WITH vec AS MATERIALIZED ({knn}),
                 vr AS (SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM vec),
                 {keyword}
                 SELECT {COLUMNS}, vr.r AS vector_rank, kw.r AS keyword_rank,
                        CASE WHEN m.embedding_model = '{quoted}' THEN m.embedding END AS emb
                 FROM memories m LEFT JOIN vr ON vr.id = m.id LEFT JOIN kw ON kw.id = m.id
                 WHERE vr.id IS NOT NULL OR kw.id IS NOT NULL"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(viewer.install_id)
                .bind(&viewer.channel)
                .bind(&viewer.thread)
                .bind(&viewer.user)
                .bind(self.settings().candidates)
                .bind(query)
                .bind(pgvector::Vector::from(v.clone()))
                .fetch_all(&mut *tx)
                .await?
        } else {
            let sql = format!(
                "WITH {keyword}
                 SELECT {COLUMNS}, NULL::bigint AS vector_rank, kw.r AS keyword_rank, NULL::vector AS emb
                 FROM memories m JOIN kw ON kw.id = m.id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(viewer.install_id)
                .bind(&viewer.channel)
                .bind(&viewer.thread)
                .bind(&viewer.user)
                .bind(self.settings().candidates)
                .bind(query)
                .fetch_all(&mut *tx)
                .await?
        };
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let emb: Option<pgvector::Vector> = r.try_get("emb")?;
            out.push(Candidate {
                memory: from_row(r)?,
                vector_rank: r.try_get("vector_rank")?,
                keyword_rank: r.try_get("keyword_rank")?,
                embedding: emb.map(|e| e.to_vec()),
            });
        }
        Ok(out)
    }
}

/// The vector half of recall: the `$5` nearest memories of `model` (with `dims` dimensions) to the vector in
/// parameter `$vparam` that the viewer in `$1`…`$4` may see, as `(id, dist)`, by the model's partial HNSW index.
/// Run it with `hnsw.iterative_scan` on (as recall does) so the scope filter cannot starve the result. `model`
/// must be a validated name ([`super::EmbedderConfig::validate`]); it is quote-escaped here again.
pub fn knn_sql(dims: usize, model: &str, vparam: usize) -> String {
    let model = model.replace('\'', "''");
    format!(
        "SELECT m.id, m.embedding::vector({dims}) <=> ${vparam}::vector({dims}) AS dist FROM memories m
         WHERE m.embedding_model = '{model}' AND {}
         ORDER BY m.embedding::vector({dims}) <=> ${vparam}::vector({dims}) LIMIT $5",
        visible(1)
    )
}

/// RRF over both rankings, weighted by age: a memory loses up to half its score, with the configured
/// half-life; pinned memories do not decay. Best first.
fn score(candidates: Vec<Candidate>, half_life_s: f64) -> Vec<(Candidate, f64)> {
    let now = chrono::Utc::now();
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts and ranks far below 2^52; vector components are f32 by design"
    )]
    let mut scored: Vec<(Candidate, f64)> = candidates
        .into_iter()
        .map(|c| {
            let rrf = [c.vector_rank, c.keyword_rank].iter().flatten().map(|r| 1.0 / (RRF_K + *r as f64)).sum::<f64>();
            let age = (now - c.memory.created_at).num_seconds().max(0) as f64;
            let decay = if c.memory.pinned || half_life_s <= 0.0 { 1.0 } else { 0.5f64.powf(age / half_life_s) };
            let s = rrf * (0.5 + 0.5 * decay);
            (c, s)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.memory.id.cmp(&b.0.memory.id)));
    scored
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// Maximal marginal relevance: picks, one at a time, the candidate with the best
/// `λ·relevance − (1−λ)·(max similarity to those picked)`; relevance is the score over the best score.
/// Candidates without a vector (keyword-only matches of unembedded memories) count as dissimilar.
fn mmr(scored: Vec<(Candidate, f64)>, lambda: f32, limit: usize) -> Vec<(Candidate, f64)> {
    let lambda = f64::from(lambda.clamp(0.0, 1.0));
    let best = scored.first().map_or(1.0, |s| s.1).max(f64::MIN_POSITIVE);
    let mut rest = scored;
    let mut picked: Vec<(Candidate, f64)> = Vec::new();
    while !rest.is_empty() && picked.len() < limit {
        let (i, _) = rest
            .iter()
            .enumerate()
            .map(|(i, (c, s))| {
                let sim = picked
                    .iter()
                    .filter_map(|(p, _)| Some(cosine(c.embedding.as_ref()?, p.embedding.as_ref()?)))
                    .fold(0.0, f64::max);
                (i, lambda * (s / best) - (1.0 - lambda) * sim)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        picked.push(rest.remove(i));
    }
    picked
}

/// Recalled memories as data for the model: one JSON object a line, with provenance and a `trusted` flag, so
/// the model can tell what a person said from what a tool printed.
pub fn for_model(recalled: &Recalled) -> String {
    let mut lines: Vec<String> = recalled
        .memories
        .iter()
        .map(|(m, _)| {
            serde_json::json!({
                "id": crate::tasks::short(m.id), "text": m.text, "scope": m.scope.as_str(),
                "provenance": m.provenance.as_str(), "trusted": m.trusted, "author": m.author,
                "created_at": m.created_at.format("%Y-%m-%d").to_string(),
            })
            .to_string()
        })
        .collect();
    if lines.is_empty() {
        lines.push("no memories match".into());
    }
    if let Some(n) = &recalled.notice {
        lines.insert(0, format!("note: {n}"));
    }
    lines.join("\n")
}

/// Recalled memories for a person in a thread: one line each with its short id and provenance.
pub fn for_thread(query: &str, recalled: &Recalled) -> String {
    let mut out = if recalled.memories.is_empty() {
        format!("I remember nothing about “{}”.", clip(query, 80))
    } else {
        let lines: Vec<String> = recalled
            .memories
            .iter()
            .map(|(m, _)| {
                let tag = if m.trusted {
                    m.provenance.as_str().to_owned()
                } else {
                    format!("{}, unverified", m.provenance.as_str())
                };
                format!("• {} — `{}` ({}, {tag})", clip(&m.text, 300), crate::tasks::short(m.id), m.scope.as_str())
            })
            .collect();
        lines.join("\n")
    };
    if let Some(n) = &recalled.notice {
        out.push_str(&format!("\n_(Note: {n}.)_"));
    }
    out
}
