//! CyNode users: a named principal that links several chat identities — (platform, install, user id) — and API
//! tokens. Display names come from the platform (the name sent with each request, [`note_platform_names`]) or are
//! set by an admin; the admin's name wins.
//! Every link is audited (`user.link`, `user.link_token`).

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;

/// What went wrong linking (phrased for the CLI and API).
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No install with that id, name or external id.
    #[error("no install `{0}` (see `cynode admin install list`)")]
    NoInstall(String),
    /// No live token with that id or name.
    #[error("no live API token `{0}` (see `cynode admin token list`)")]
    NoToken(String),
    /// No user of that name.
    #[error("no CyNode user `{0}` (see `cynode users list`)")]
    NoUser(String),
    /// The identity belongs to another user.
    #[error("that chat identity is linked to CyNode user `{0}` already")]
    Taken(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// A linked chat identity.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Identity {
    /// Platform of the install.
    pub platform: String,
    /// Install id.
    pub install_id: Uuid,
    /// Install name.
    pub install: String,
    /// The platform's user id.
    pub user_id: String,
    /// Display name set by an admin (`cynode users link --display-name`), when set.
    pub display_name: Option<String>,
    /// The name the platform last sent with this identity's requests (Discord nickname or global name, Telegram
    /// username or first and last name), when it sent one.
    pub platform_name: Option<String>,
}

impl Identity {
    /// The name to show: the admin's, else the platform's.
    #[must_use]
    pub fn shown_name(&self) -> Option<&str> {
        self.display_name.as_deref().or(self.platform_name.as_deref())
    }
}

/// A CyNode user with what is linked to it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Display name set by an admin.
    pub display_name: Option<String>,
    /// Linked chat identities.
    pub identities: Vec<Identity>,
    /// Names of linked live API tokens.
    pub tokens: Vec<String>,
    /// Roles of the linked identities: (install name, channel or empty, role).
    pub roles: Vec<(String, String, String)>,
}

async fn install_id(tx: &mut sqlx::PgConnection, install: &str) -> Result<Uuid, UserError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM installs WHERE id::text = $1 OR name = $1 OR external_id = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(install)
    .fetch_optional(&mut *tx)
    .await?;
    id.ok_or_else(|| UserError::NoInstall(install.to_string()))
}

async fn principal(tx: &mut sqlx::PgConnection, name: &str, create: bool) -> Result<Uuid, UserError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(UserError::Invalid("a user name is 1–80 characters".into()));
    }
    let found: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM principals WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
    match (found, create) {
        (Some(id), _) => Ok(id),
        (None, false) => Err(UserError::NoUser(name.to_string())),
        (None, true) => {
            let id = Uuid::now_v7();
            sqlx::query("INSERT INTO principals (id, name) VALUES ($1, $2)")
                .bind(id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            Ok(id)
        }
    }
}

/// Links the chat identity (`install`, `user_id`) to the CyNode user `name` (created when new); `display_name`
/// sets the identity's display name. An identity already linked to another user is refused.
///
/// # Errors
/// [`UserError`].
pub async fn link_identity(
    pool: &PgPool,
    actor: &str,
    name: &str,
    install: &str,
    user_id: &str,
    display_name: Option<&str>,
) -> Result<(), UserError> {
    if user_id.trim().is_empty() {
        return Err(UserError::Invalid(
            "--user needs the platform's user id (Slack `U…`, a Discord or Telegram id)".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let install = install_id(&mut tx, install).await?;
    let p = principal(&mut tx, name, true).await?;
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT p.name FROM chat_identities c JOIN principals p ON p.id = c.principal_id
         WHERE c.install_id = $1 AND c.user_id = $2 AND c.principal_id <> $3",
    )
    .bind(install)
    .bind(user_id)
    .bind(p)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(owner) = owner {
        return Err(UserError::Taken(owner));
    }
    sqlx::query(
        "INSERT INTO chat_identities (install_id, user_id, principal_id, display_name) VALUES ($1, $2, $3, $4)
         ON CONFLICT (install_id, user_id) DO UPDATE
             SET display_name = COALESCE(EXCLUDED.display_name, chat_identities.display_name)",
    )
    .bind(install)
    .bind(user_id)
    .bind(p)
    .bind(display_name)
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "install": install, "user_id": user_id, "display_name": display_name });
    audit::append(&mut tx, actor, "user.link", name, &detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Links the live API token `token` (id or name) to the CyNode user `name` (created when new).
///
/// # Errors
/// [`UserError`].
pub async fn link_token(pool: &PgPool, actor: &str, name: &str, token: &str) -> Result<(), UserError> {
    let mut tx = pool.begin().await?;
    let p = principal(&mut tx, name, true).await?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "UPDATE api_tokens SET principal_id = $2
         WHERE id = (SELECT id FROM api_tokens WHERE (id::text = $1 OR name = $1) AND revoked_at IS NULL
                     ORDER BY created_at DESC LIMIT 1)
         RETURNING id",
    )
    .bind(token)
    .bind(p)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else { return Err(UserError::NoToken(token.to_string())) };
    audit::append(&mut tx, actor, "user.link_token", name, &serde_json::json!({ "token": id })).await?;
    tx.commit().await?;
    Ok(())
}

/// Records, on the requesters' linked chat identities, the display names the platforms sent with the chat
/// requests of `tasks` (the newest per identity). The admin-set `display_name` is left alone; identities nobody
/// linked are not created. Returns how many identities changed.
///
/// # Errors
/// Store failures.
pub async fn note_platform_names(pool: &PgPool, tasks: &[Uuid]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE chat_identities c SET platform_name = n.name
         FROM (SELECT DISTINCT ON (t.install_id, t.requester) t.install_id, t.requester,
                      left(btrim(e.payload->'actor'->>'name'), 200) AS name
               FROM tasks t JOIN inbound_events e ON e.id = t.inbound_id
               WHERE t.id = ANY($1) AND t.source = 'chat' AND t.install_id IS NOT NULL
               ORDER BY t.install_id, t.requester, t.created_at DESC) n
         WHERE c.install_id = n.install_id AND c.user_id = n.requester AND n.name <> ''
           AND c.platform_name IS DISTINCT FROM n.name",
    )
    .bind(tasks)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Every CyNode user with its links; with `install`, only the users linked to it (a chat identity there or a
/// live API token limited to it), each showing only what belongs to that install.
///
/// # Errors
/// Store failures.
pub async fn list(pool: &PgPool, install: Option<Uuid>) -> Result<Vec<User>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT p.name FROM principals p
         WHERE $1::uuid IS NULL
            OR EXISTS (SELECT 1 FROM chat_identities c WHERE c.principal_id = p.id AND c.install_id = $1)
            OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.principal_id = p.id AND t.install_id = $1
                                                   AND t.revoked_at IS NULL)
         ORDER BY p.name",
    )
    .bind(install)
    .fetch_all(pool)
    .await?;
    let mut users = Vec::with_capacity(names.len());
    for n in names {
        if let Some(u) = show(pool, &n, install).await? {
            users.push(u);
        }
    }
    Ok(users)
}

/// Whether a CyNode user of that name (or id) exists, wherever it is linked.
///
/// # Errors
/// Store failures.
pub async fn exists(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM principals WHERE name = $1 OR id::text = $1)")
        .bind(name.trim())
        .fetch_one(pool)
        .await
}

/// One CyNode user with its identities, tokens and the roles of its identities. With `install`, the user is
/// found only when linked to that install (a chat identity there or a live API token limited to it), and only
/// that install's identities, tokens and roles are shown: another install's users read as absent.
///
/// # Errors
/// Store failures.
pub async fn show(pool: &PgPool, name: &str, install: Option<Uuid>) -> Result<Option<User>, sqlx::Error> {
    let row: Option<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT p.id, p.name, p.display_name FROM principals p
         WHERE (p.name = $1 OR p.id::text = $1)
           AND ($2::uuid IS NULL
                OR EXISTS (SELECT 1 FROM chat_identities c WHERE c.principal_id = p.id AND c.install_id = $2)
                OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.principal_id = p.id AND t.install_id = $2
                                                       AND t.revoked_at IS NULL))",
    )
    .bind(name)
    .bind(install)
    .fetch_optional(pool)
    .await?;
    let Some((id, name, display_name)) = row else { return Ok(None) };
    let identities: Vec<Identity> = sqlx::query_as(
        "SELECT i.platform, c.install_id, i.name AS install, c.user_id, c.display_name, c.platform_name
         FROM chat_identities c JOIN installs i ON i.id = c.install_id
         WHERE c.principal_id = $1 AND ($2::uuid IS NULL OR c.install_id = $2)
         ORDER BY i.name, c.user_id",
    )
    .bind(id)
    .bind(install)
    .fetch_all(pool)
    .await?;
    let tokens: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM api_tokens WHERE principal_id = $1 AND revoked_at IS NULL
                                       AND ($2::uuid IS NULL OR install_id = $2) ORDER BY name",
    )
    .bind(id)
    .bind(install)
    .fetch_all(pool)
    .await?;
    let roles: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT i.name, g.channel, g.role FROM role_grants g JOIN chat_identities c
             ON c.install_id = g.install_id AND c.user_id = g.user_id
         JOIN installs i ON i.id = g.install_id
         WHERE c.principal_id = $1 AND ($2::uuid IS NULL OR g.install_id = $2) ORDER BY i.name, g.channel",
    )
    .bind(id)
    .bind(install)
    .fetch_all(pool)
    .await?;
    Ok(Some(User { id, name, display_name, identities, tokens, roles }))
}
