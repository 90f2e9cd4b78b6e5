//! `cynode users link|list|show` and `cynode admin role set|remove|list`: team mode on the database (`DATABASE_URL`, else
//! the embedded PostgreSQL of a running `cynode up`). Every change is audited with actor `cli`.

use anyhow::Context as _;
use cynode_orchestrator::team::{self, TeamRole, users};
use sqlx::PgPool;

use crate::cli::{RoleCommand, TeamCommand, UsersCommand};
use crate::config::Config;

/// Runs `cynode users …`.
///
/// # Errors
/// Any failure, phrased for the user.
pub(super) async fn users(cmd: UsersCommand, config: &Config) -> anyhow::Result<()> {
    let is_root = cynode_orchestrator::store::embedded::effective_uid() == 0;
    let pool = super::admin::database(config, &config.data_dir(is_root)).await?;
    let result = run_users(&pool, cmd).await;
    pool.close().await;
    result
}

async fn run_users(pool: &PgPool, cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Link { name, install: Some(install), user: Some(user), display_name, .. } => {
            users::link_identity(pool, "cli", &name, &install, &user, display_name.as_deref()).await?;
            println!("linked {user} of install `{install}` to user `{name}`");
        }
        UsersCommand::Link { name, token: Some(token), .. } => {
            users::link_token(pool, "cli", &name, &token).await?;
            println!("linked API token `{token}` to user `{name}`");
        }
        UsersCommand::Link { .. } => anyhow::bail!("give --install and --user, or --token"),
        UsersCommand::List { json } => {
            let all = users::list(pool, None).await?;
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!("{:<24}  {:>10}  {:>6}  ROLES", "NAME", "IDENTITIES", "TOKENS");
                for u in all {
                    let roles: Vec<String> = u.roles.iter().map(role_text).collect();
                    println!("{:<24}  {:>10}  {:>6}  {}", u.name, u.identities.len(), u.tokens.len(), roles.join(", "));
                }
            }
        }
        UsersCommand::Show { name, json } => {
            let u = users::show(pool, &name, None)
                .await?
                .with_context(|| format!("no CyNode user `{name}` (see `cynode users list`)"))?;
            if json {
                println!("{}", serde_json::to_string(&u)?);
            } else {
                println!("user        {} ({})", u.name, u.id);
                for i in &u.identities {
                    let mut shown = i.shown_name().map(|n| format!(" \"{n}\"")).unwrap_or_default();
                    if let (Some(_), Some(p)) = (&i.display_name, &i.platform_name)
                        && i.display_name.as_ref() != Some(p)
                    {
                        shown.push_str(&format!(" (on the platform: \"{p}\")"));
                    }
                    println!("identity    {} {} {}{shown}", i.platform, i.install, i.user_id);
                }
                for t in &u.tokens {
                    println!("token       {t}");
                }
                for r in &u.roles {
                    println!("role        {}", role_text(r));
                }
            }
        }
    }
    Ok(())
}

fn role_text((install, channel, role): &(String, String, String)) -> String {
    if channel.is_empty() { format!("{role} in {install}") } else { format!("{role} in {install} #{channel}") }
}

/// Runs `cynode admin role …`.
///
/// # Errors
/// Any failure, phrased for the user.
pub(super) async fn role(pool: &PgPool, actor: &str, cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Set { install, user, role, channel } => {
            let r = TeamRole::parse(&role).context("the role is admin, approver, member, viewer or none")?;
            let id = install_id(pool, &install).await?;
            team::set_role(pool, actor, id, channel.as_deref(), &user, r).await?;
            let place =
                channel.map_or_else(|| format!("install `{install}`"), |c| format!("channel {c} of `{install}`"));
            println!("{user} is {} in {place}", r.as_str());
        }
        RoleCommand::Remove { install, user, channel } => {
            let id = install_id(pool, &install).await?;
            let place = channel
                .as_deref()
                .map_or_else(|| format!("install `{install}`"), |c| format!("channel {c} of `{install}`"));
            let Some(was) = team::remove_role(pool, actor, id, channel.as_deref(), &user).await? else {
                anyhow::bail!("{user} has no role grant in {place} (see `cynode admin role list`)");
            };
            println!("{user} is no longer {was} in {place}");
        }
        RoleCommand::List { install, json } => {
            let id = match install {
                Some(i) => Some(install_id(pool, &i).await?),
                None => None,
            };
            let grants = team::list_roles(pool, id).await?;
            if json {
                println!("{}", serde_json::to_string(&grants)?);
            } else {
                println!("{:<36}  {:<14}  {:<20}  ROLE", "INSTALL", "CHANNEL", "USER");
                for g in grants {
                    let channel = if g.channel.is_empty() { "*" } else { g.channel.as_str() };
                    println!("{:<36}  {channel:<14}  {:<20}  {}", g.install_id, g.user_id, g.role);
                }
            }
        }
    }
    Ok(())
}

/// The settings `cynode admin team set` reads (the body of `PUT /v1/team` without `install`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    default_role: String,
    #[serde(default)]
    grants: std::collections::BTreeMap<String, team::RoleGrant>,
}

/// Runs `cynode admin team …`.
///
/// # Errors
/// Any failure, phrased for the user.
pub(super) async fn team(pool: &PgPool, actor: &str, cmd: TeamCommand) -> anyhow::Result<()> {
    let (TeamCommand::Show { install, .. } | TeamCommand::Set { install, .. }) = &cmd;
    let id = install_id(pool, install).await?;
    match cmd {
        TeamCommand::Show { json, .. } => {
            let settings = team::team_settings(pool, id).await?;
            if json {
                println!("{}", serde_json::to_string(&settings)?);
            } else {
                println!("default role  {}", settings.default_role);
                if settings.grants.is_empty() {
                    println!("grants        none (every role uses the built-in commands, with no other limit)");
                }
                for (role, grant) in &settings.grants {
                    println!("{role:<13} {}", serde_json::to_string(grant)?);
                }
            }
        }
        TeamCommand::Set { install, file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the settings from standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let settings: SettingsFile = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not team settings: {e}", file.display()))?;
            let role = team::check_settings(&settings.default_role, &settings.grants).map_err(anyhow::Error::msg)?;
            team::set_team_settings(pool, actor, id, role, &settings.grants).await?;
            println!(
                "team settings of `{install}`: default role {}, grants for {} role(s)",
                role.as_str(),
                settings.grants.len()
            );
        }
    }
    Ok(())
}

/// The id of the install named by id, name or external id; an unknown one is an error that says where to look.
///
/// # Errors
/// Store failures, or no such install.
pub(super) async fn install_id(pool: &PgPool, install: &str) -> anyhow::Result<uuid::Uuid> {
    team::find_install(pool, install)
        .await?
        .with_context(|| format!("no install `{install}` (see `cynode admin install list`)"))
}
