//! Writing, listing and forgetting memories. Every read carries the viewer's scope filter ([`visible`]);
//! every write and deletion is audited.

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{InputKind, MAX_TEXT, Memories, Memory, MemoryError, Provenance, Scope, Viewer, clip, embed::EmbedError};
use crate::audit;

/// The scope filter, with the viewer's install, channel, thread and user as parameters `$p`…`$p+3`: expired
/// memories and proposals awaiting approval never; shared ones always; the rest only in their own install, and
/// then only the install's, the viewer's channel's, the viewer's thread's, and the viewer's own.
pub fn visible(p: usize) -> String {
    let (i, c, t, u) = (p, p + 1, p + 2, p + 3);
    format!(
        "NOT m.awaiting_approval AND (m.expires_at IS NULL OR m.expires_at > now()) AND (m.scope = 'shared' OR \
         (m.install_id IS NOT DISTINCT \
         FROM ${i} AND (m.scope = 'install' OR (m.scope = 'channel' AND m.channel = ${c}) OR (m.scope = 'thread' \
         AND m.channel = ${c} AND m.thread = ${t}) OR (m.scope = 'user' AND m.user_id = ${u}))))"
    )
}

/// The columns of [`Memory`], from `memories m`.
pub(crate) const COLUMNS: &str = "m.id, m.scope, m.channel, m.thread, m.user_id, m.author, m.text, m.provenance, \
     m.source_conversation, m.source_job, m.source_label, m.pinned, m.created_at, m.expires_at, m.embedding_model, \
     m.awaiting_approval";

pub(crate) fn from_row(r: &PgRow) -> Result<Memory, sqlx::Error> {
    let decode = |col: &str, e: String| sqlx::Error::ColumnDecode { index: col.into(), source: e.into() };
    let provenance = Provenance::parse(r.try_get("provenance")?).map_err(|e| decode("provenance", e))?;
    Ok(Memory {
        id: r.try_get("id")?,
        scope: Scope::parse(r.try_get("scope")?).map_err(|e| decode("scope", e))?,
        channel: r.try_get("channel")?,
        thread: r.try_get("thread")?,
        user_id: r.try_get("user_id")?,
        author: r.try_get("author")?,
        text: r.try_get("text")?,
        provenance,
        trusted: provenance.trusted(),
        source_conversation: r.try_get("source_conversation")?,
        source_job: r.try_get("source_job")?,
        source_label: r.try_get("source_label")?,
        pinned: r.try_get("pinned")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        embedding_model: r.try_get("embedding_model")?,
        awaiting_approval: r.try_get("awaiting_approval")?,
    })
}

/// How long a proposal of install-wide memory waits for an approver before it expires.
pub const PROPOSAL_TTL: Duration = Duration::from_secs(7 * 86_400);

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

/// A typed memory id or id prefix, normalised: at least 8 hex digits (dashes allowed), else not found.
fn id_prefix(id: &str) -> Result<String, MemoryError> {
    let id = id.trim().trim_matches('`').to_ascii_lowercase();
    if id.len() < 8 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(MemoryError::NotFound(clip(&id, 40)));
    }
    Ok(id)
}

/// The one id a prefix matched (`found` holds at most two), or why not.
fn the_one(found: &[Uuid], id: String, what: &str) -> Result<Uuid, MemoryError> {
    match found {
        [one] => Ok(*one),
        [] => Err(MemoryError::NotFound(id)),
        _ => Err(MemoryError::Invalid(format!("`{id}` matches several {what}; use more characters"))),
    }
}

/// A memory to write.
#[derive(Debug, Clone)]
pub struct NewMemory {
    /// The text.
    pub text: String,
    /// Who may see it.
    pub scope: Scope,
    /// Where it came from.
    pub provenance: Provenance,
    /// The platform message it came from (its inbound event).
    pub source_inbound: Option<Uuid>,
    /// The job it came from.
    pub source_job: Option<Uuid>,
    /// A label (an import's name).
    pub source_label: Option<String>,
    /// Exempt from decay.
    pub pinned: bool,
    /// Expire after this long (None: the scope's retention, if any).
    pub ttl: Option<Duration>,
}

impl NewMemory {
    /// A memory of `text` in `scope` with `provenance`, everything else default.
    pub fn new(text: impl Into<String>, scope: Scope, provenance: Provenance) -> Self {
        Self {
            text: text.into(),
            scope,
            provenance,
            source_inbound: None,
            source_job: None,
            source_label: None,
            pinned: false,
            ttl: None,
        }
    }
}

/// What to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// One memory.
    Id(Uuid),
    /// Everything from one conversation (thread).
    Conversation(Uuid),
    /// Everything with one source label (an import).
    Label(String),
    /// Everything one user wrote or owns in the viewer's install (right to delete).
    User(String),
}

impl Memories {
    /// Writes a memory for `viewer`, audited, and embeds it at once when the embedder answers quickly (else the
    /// worker does later).
    ///
    /// # Errors
    /// [`MemoryError::Invalid`] for empty or oversized text, or a scope the viewer's place cannot hold (a channel
    /// memory from the API); [`MemoryError::Forbidden`] for `shared` from anyone but an admin/import. An
    /// install-wide memory from someone who is not an approver is stored as a proposal
    /// ([`Memory::awaiting_approval`]) that no one recalls until an approver approves it ([`Memories::review`]).
    pub async fn add(&self, viewer: &Viewer, new: NewMemory) -> Result<Memory, MemoryError> {
        let text = new.text.trim();
        if text.is_empty() {
            return Err(MemoryError::Invalid("there is nothing to remember: the text is empty".into()));
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT {
            return Err(MemoryError::Invalid(format!(
                "that is {chars} characters; a memory may be at most {MAX_TEXT} (split it, or keep the gist)"
            )));
        }
        let (install, channel, thread, user) = match new.scope {
            Scope::Shared => {
                if !matches!(new.provenance, Provenance::Admin | Provenance::Import) || !viewer.approver {
                    return Err(MemoryError::Forbidden(
                        "shared memory (every install) is written only by a deployment admin or an import".into(),
                    ));
                }
                (None, None, None, None)
            }
            Scope::Install => {
                // A proposal waits for an approver of its install; without an install nobody could decide it.
                if !viewer.approver && viewer.install_id.is_none() {
                    return Err(MemoryError::Forbidden(
                        "install-wide memory needs an approver: ask one of this install's approvers to write it, \
                         or remember it for this channel instead"
                            .into(),
                    ));
                }
                (viewer.install_id, None, None, None)
            }
            Scope::Channel => {
                let Some(c) = &viewer.channel else {
                    return Err(MemoryError::Invalid("a channel memory must be written from that channel".into()));
                };
                (viewer.install_id, Some(c.clone()), None, None)
            }
            Scope::Thread => match (&viewer.channel, &viewer.thread) {
                (Some(c), Some(t)) => (viewer.install_id, Some(c.clone()), Some(t.clone()), None),
                _ => return Err(MemoryError::Invalid("a thread memory must be written from that thread".into())),
            },
            Scope::User => (viewer.install_id, None, None, Some(viewer.user.clone())),
        };
        // Install-wide memory from someone who is not an approver waits for one, and expires undecided.
        let proposal = new.scope == Scope::Install && !viewer.approver;
        let ttl = if proposal { Some(PROPOSAL_TTL) } else { new.ttl.or_else(|| self.retention(new.scope)) };
        let ttl_s = ttl.map(secs);
        // Random (v4), not time-ordered: the 8-character prefix people type must tell memories apart.
        let id = Uuid::new_v4();
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(safe_sql!(
            "INSERT INTO memories AS m (id, install_id, scope, channel, thread, user_id, author, text, provenance,
                 source_conversation, source_inbound, source_job, source_label, pinned, expires_at,
                 awaiting_approval)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                     now() + make_interval(secs => $15::bigint), $16)
             RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(install)
        .bind(new.scope.as_str())
        .bind(&channel)
        .bind(&thread)
        .bind(&user)
        .bind(&viewer.user)
        .bind(text)
        .bind(new.provenance.as_str())
        .bind(viewer.conversation_id)
        .bind(new.source_inbound)
        .bind(new.source_job)
        .bind(&new.source_label)
        .bind(new.pinned)
        .bind(ttl_s)
        .bind(proposal)
        .fetch_one(&mut *tx)
        .await?;
        let mut memory = from_row(&row)?;
        let detail = serde_json::json!({
            "install_id": install, "scope": new.scope.as_str(), "provenance": new.provenance.as_str(),
            "chars": chars,
        });
        let action = if proposal { "memory.proposed" } else { "memory.add" };
        audit::append(&mut tx, &viewer.user, action, &id.to_string(), &detail).await?;
        tx.commit().await?;
        if let Some(embedder) = self.embedder() {
            let texts = [memory.text.clone()];
            let embedded = tokio::time::timeout(self.settings().inline_embed_timeout, async {
                let vectors = embedder.embed(&texts, InputKind::Passage).await?;
                store_vectors(self.pool(), embedder.model(), &[(id, vectors.into_iter().next().unwrap_or_default())])
                    .await
            })
            .await;
            match embedded {
                Ok(Ok(_)) => memory.embedding_model = Some(embedder.model().to_owned()),
                Ok(Err(e)) => tracing::warn!(memory = %id, error = %e, "memory stored; embedding it later"),
                Err(_) => tracing::warn!(memory = %id, "the embedder is slow; memory stored, embedding it later"),
            }
        }
        Ok(memory)
    }

    /// The retention of `scope` (`memory.retention_days`), if any.
    fn retention(&self, scope: Scope) -> Option<Duration> {
        self.settings().retention.iter().find(|(s, _)| *s == scope).map(|r| r.1)
    }

    /// Proposals of install-wide memory in the viewer's install, oldest first: all of them for an approver, the
    /// viewer's own for anyone else.
    ///
    /// # Errors
    /// Store failures.
    pub async fn proposals(&self, viewer: &Viewer, limit: i64) -> Result<Vec<Memory>, MemoryError> {
        let rows = sqlx::query(safe_sql!(
            "SELECT {COLUMNS} FROM memories m
             WHERE m.awaiting_approval AND m.install_id = $1 AND m.expires_at > now() AND ($2 OR m.author = $3)
             ORDER BY m.created_at, m.id LIMIT $4"
        ))
        .bind(viewer.install_id)
        .bind(viewer.approver)
        .bind(&viewer.user)
        .bind(limit.clamp(1, 200))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Resolves the id (or a prefix of at least 8 characters) of a proposal in the viewer's install (whether the
    /// viewer may decide it is [`Memories::review`]'s to say).
    ///
    /// # Errors
    /// [`MemoryError::NotFound`]; [`MemoryError::Invalid`] for an ambiguous prefix.
    pub async fn resolve_proposal(&self, viewer: &Viewer, id: &str) -> Result<Uuid, MemoryError> {
        let id = id_prefix(id)?;
        let found: Vec<Uuid> = sqlx::query_scalar(
            "SELECT m.id FROM memories m
             WHERE m.awaiting_approval AND m.install_id = $1 AND m.id::text LIKE $2 || '%' LIMIT 2",
        )
        .bind(viewer.install_id)
        .bind(&id)
        .fetch_all(self.pool())
        .await?;
        the_one(&found, id, "proposals")
    }

    /// Decides a proposal of install-wide memory, audited: an approver of the install approves it (it is
    /// recalled from then on, with the scope's retention) or denies it (deleted); its author may withdraw it
    /// (deny) but not approve it. Returns the memory as it is now (`None`: deleted).
    ///
    /// # Errors
    /// [`MemoryError::NotFound`] for no such proposal in the viewer's install (another install's id, one already
    /// decided, one expired); [`MemoryError::Forbidden`] for someone who may not decide it.
    pub async fn review(&self, viewer: &Viewer, id: Uuid, approve: bool) -> Result<Option<Memory>, MemoryError> {
        let mut tx = self.pool().begin().await?;
        let author: Option<String> = sqlx::query_scalar(
            "SELECT author FROM memories
             WHERE id = $1 AND awaiting_approval AND install_id = $2 AND expires_at > now() FOR UPDATE",
        )
        .bind(id)
        .bind(viewer.install_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(author) = author else {
            return Err(MemoryError::NotFound(id.to_string()));
        };
        let own = author == viewer.user;
        let refused = match (approve, viewer.approver, own) {
            (true, _, true) => Some("you proposed it; another approver of this install must approve it"),
            (true, false, false) | (false, false, false) => {
                Some("only an approver of this install can decide on install-wide memory")
            }
            _ => None,
        };
        if let Some(why) = refused {
            let detail = serde_json::json!({ "install_id": viewer.install_id, "approve": approve, "author": author });
            audit::append(&mut tx, &viewer.user, "memory.review.refused", &id.to_string(), &detail).await?;
            tx.commit().await?;
            return Err(MemoryError::Forbidden(why.into()));
        }
        let detail = serde_json::json!({ "install_id": viewer.install_id, "author": author });
        let out = if approve {
            let ttl_s = self.retention(Scope::Install).map(secs);
            let row = sqlx::query(safe_sql!(
                "UPDATE memories AS m SET awaiting_approval = false,
                        expires_at = now() + make_interval(secs => $2::bigint)
                 WHERE m.id = $1 RETURNING {COLUMNS}"
            ))
            .bind(id)
            .bind(ttl_s)
            .fetch_one(&mut *tx)
            .await?;
            audit::append(&mut tx, &viewer.user, "memory.approved", &id.to_string(), &detail).await?;
            Some(from_row(&row)?)
        } else {
            sqlx::query("DELETE FROM memories WHERE id = $1").bind(id).execute(&mut *tx).await?;
            let action = if own { "memory.withdrawn" } else { "memory.denied" };
            audit::append(&mut tx, &viewer.user, action, &id.to_string(), &detail).await?;
            None
        };
        tx.commit().await?;
        Ok(out)
    }

    /// The memories `viewer` can see, newest first (`limit` at most 200).
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, viewer: &Viewer, limit: i64) -> Result<Vec<Memory>, MemoryError> {
        let rows = sqlx::query(safe_sql!(
            "SELECT {COLUMNS} FROM memories m WHERE {} ORDER BY m.created_at DESC, m.id DESC LIMIT $5",
            visible(1)
        ))
        .bind(viewer.install_id)
        .bind(&viewer.channel)
        .bind(&viewer.thread)
        .bind(&viewer.user)
        .bind(limit.clamp(1, 200))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// One memory `viewer` can see.
    ///
    /// # Errors
    /// [`MemoryError::NotFound`] for an id the viewer cannot see (another install's included).
    pub async fn get(&self, viewer: &Viewer, id: Uuid) -> Result<Memory, MemoryError> {
        let row = sqlx::query(safe_sql!("SELECT {COLUMNS} FROM memories m WHERE m.id = $5 AND {}", visible(1)))
            .bind(viewer.install_id)
            .bind(&viewer.channel)
            .bind(&viewer.thread)
            .bind(&viewer.user)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => Ok(from_row(&r)?),
            None => Err(MemoryError::NotFound(id.to_string())),
        }
    }

    /// Resolves a memory id or a prefix of at least 8 characters among what `viewer` can see.
    ///
    /// # Errors
    /// [`MemoryError::NotFound`] (also for an ambiguous prefix, with a message that says so).
    pub async fn resolve(&self, viewer: &Viewer, id: &str) -> Result<Uuid, MemoryError> {
        let id = id_prefix(id)?;
        if let Ok(u) = id.parse::<Uuid>() {
            return Ok(u);
        }
        let found: Vec<Uuid> = sqlx::query_scalar(safe_sql!(
            "SELECT m.id FROM memories m WHERE m.id::text LIKE $5 || '%' AND {} LIMIT 2",
            visible(1)
        ))
        .bind(viewer.install_id)
        .bind(&viewer.channel)
        .bind(&viewer.thread)
        .bind(&viewer.user)
        .bind(&id)
        .fetch_all(self.pool())
        .await?;
        the_one(&found, id, "memories")
    }

    /// Forgets memories, audited. By id: the viewer must see it and be its author or owner, or an approver.
    /// By conversation or label: the viewer's memories from it (an approver: everyone's in the install). By user:
    /// the viewer's own, or anyone's for an approver. Returns how many were deleted.
    ///
    /// # Errors
    /// [`MemoryError::NotFound`] for an id the viewer cannot see; [`MemoryError::Forbidden`] for someone
    /// else's memory or someone else's data.
    pub async fn forget(&self, viewer: &Viewer, what: &Forget) -> Result<u64, MemoryError> {
        let mut tx = self.pool().begin().await?;
        let (deleted, subject) = match what {
            Forget::Id(id) => {
                let row = sqlx::query(safe_sql!(
                    "SELECT m.author, m.user_id FROM memories m WHERE m.id = $5 AND {} FOR UPDATE",
                    visible(1)
                ))
                .bind(viewer.install_id)
                .bind(&viewer.channel)
                .bind(&viewer.thread)
                .bind(&viewer.user)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Err(MemoryError::NotFound(id.to_string())) };
                let author: String = row.try_get("author")?;
                let owner: Option<String> = row.try_get("user_id")?;
                if author != viewer.user && owner.as_deref() != Some(viewer.user.as_str()) && !viewer.approver {
                    let detail = serde_json::json!({ "author": author });
                    audit::append(&mut tx, &viewer.user, "memory.forget.refused", &id.to_string(), &detail).await?;
                    tx.commit().await?;
                    return Err(MemoryError::Forbidden(format!(
                        "memory `{}` was written by {author}; only its author or an approver can forget it",
                        crate::tasks::short(*id)
                    )));
                }
                let n = sqlx::query("DELETE FROM memories WHERE id = $1").bind(id).execute(&mut *tx).await?;
                (n.rows_affected(), id.to_string())
            }
            Forget::User(user) => {
                if user != &viewer.user && !viewer.approver {
                    return Err(MemoryError::Forbidden("only an approver can forget another user's memories".into()));
                }
                let n = sqlx::query(
                    "DELETE FROM memories WHERE install_id IS NOT DISTINCT FROM $1 AND (author = $2 OR user_id = $2)",
                )
                .bind(viewer.install_id)
                .bind(user)
                .execute(&mut *tx)
                .await?;
                (n.rows_affected(), format!("user:{user}"))
            }
            Forget::Conversation(_) | Forget::Label(_) => {
                let (conv, label) = match what {
                    Forget::Conversation(c) => (Some(*c), None),
                    Forget::Label(l) => (None, Some(l.as_str())),
                    _ => (None, None),
                };
                let n = sqlx::query(
                    "DELETE FROM memories WHERE install_id IS NOT DISTINCT FROM $1
                       AND (source_conversation = $2 OR source_label = $3) AND ($4 OR author = $5)",
                )
                .bind(viewer.install_id)
                .bind(conv)
                .bind(label)
                .bind(viewer.approver)
                .bind(&viewer.user)
                .execute(&mut *tx)
                .await?;
                let subject = conv.map_or_else(|| format!("label:{}", label.unwrap_or("")), |c| format!("source:{c}"));
                (n.rows_affected(), subject)
            }
        };
        let detail = serde_json::json!({ "install_id": viewer.install_id, "deleted": deleted });
        audit::append(&mut tx, &viewer.user, "memory.forget", &subject, &detail).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// The dimension `model` is registered with, registering it (and creating its partial HNSW index) with `dims`
/// when it is new.
///
/// # Errors
/// [`EmbedError::Dimension`] when the model is registered with another size; store failures as `Err(Ok(e))`.
pub async fn ensure_model(
    pool: &sqlx::PgPool,
    model: &str,
    dims: usize,
) -> Result<Result<(), EmbedError>, sqlx::Error> {
    let dims_i = i32::try_from(dims).unwrap_or(i32::MAX);
    let known: Option<i32> =
        sqlx::query_scalar("SELECT dims FROM memory_models WHERE model = $1").bind(model).fetch_optional(pool).await?;
    let registered = match known {
        Some(d) => d,
        None => {
            sqlx::query_scalar("SELECT cynode_memory_index($1, $2)").bind(model).bind(dims_i).fetch_one(pool).await?
        }
    };
    Ok(if registered == dims_i {
        Ok(())
    } else {
        Err(EmbedError::Dimension {
            model: model.to_owned(),
            expected: usize::try_from(registered).unwrap_or_default(),
            got: dims,
        })
    })
}

/// Stores vectors of `model` for memories (skipping ones deleted meanwhile).
///
/// # Errors
/// A dimension that does not match the model's, or a store failure.
pub async fn store_vectors(
    pool: &sqlx::PgPool,
    model: &str,
    vectors: &[(Uuid, Vec<f32>)],
) -> Result<(), StoreVectorsError> {
    let Some(dims) = vectors.first().map(|v| v.1.len()) else { return Ok(()) };
    ensure_model(pool, model, dims).await??;
    let mut conn = pool.acquire().await?;
    write_vectors(&mut conn, model, vectors).await?;
    Ok(())
}

pub(crate) async fn write_vectors(
    conn: &mut PgConnection,
    model: &str,
    vectors: &[(Uuid, Vec<f32>)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = vectors.iter().map(|v| v.0).collect();
    let vecs: Vec<pgvector::Vector> = vectors.iter().map(|v| pgvector::Vector::from(v.1.clone())).collect();
    sqlx::query(
        "UPDATE memories m SET embedding = v.e, embedding_model = $3, embedded_at = now()
         FROM unnest($1::uuid[], $2::vector[]) AS v(id, e) WHERE m.id = v.id",
    )
    .bind(&ids)
    .bind(&vecs)
    .bind(model)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why vectors could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreVectorsError {
    /// The embedder's vectors do not fit the model.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

impl From<StoreVectorsError> for MemoryError {
    fn from(e: StoreVectorsError) -> Self {
        match e {
            StoreVectorsError::Embed(e) => MemoryError::Invalid(e.to_string()),
            StoreVectorsError::Store(e) => MemoryError::Store(e),
        }
    }
}
