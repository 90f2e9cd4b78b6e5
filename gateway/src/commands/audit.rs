//! `cynode audit verify|export|checkpoint|keygen`: the hash-chained audit log, straight on the database
//! (`DATABASE_URL`, else the embedded PostgreSQL of a running `cynode up`).

use std::io::Write as _;

use anyhow::Context as _;
use cynode_orchestrator::audit::{self, CheckpointKey, checkpoint};
use secrecy::ExposeSecret as _;

use crate::cli::AuditCommand;
use crate::config::Config;

/// Runs `cynode audit …`.
///
/// # Errors
/// Any failure, phrased for the user; a broken chain is an error (exit code 1) naming the first broken link.
pub(super) async fn run(cmd: AuditCommand, config: &Config) -> anyhow::Result<()> {
    if let AuditCommand::Keygen = cmd {
        let seed = CheckpointKey::generate();
        let key = CheckpointKey::from_base64(&seed)?;
        println!("{}", seed.expose_secret());
        eprintln!(
            "public key (for security.audit_public_key on machines that only verify): {}",
            checkpoint::public_key_base64(&key.verifying_key())
        );
        return Ok(());
    }
    let is_root = cynode_orchestrator::store::embedded::effective_uid() == 0;
    let pool = super::admin::database(config, &config.data_dir(is_root)).await?;
    // Entries wait a moment for a replica's chainer; link what is committed now, so verify, export and checkpoint
    // cover everything up to this command (a verify-only database role may not write: then they cover what the
    // replicas linked).
    if audit::flush(&pool).await.is_err() {
        eprintln!("note: could not link the entries waiting for the chainer (no write access?); they are left out");
    }
    let result = match cmd {
        AuditCommand::Verify { public_key, json } => verify(&pool, config, public_key.as_deref(), json).await,
        AuditCommand::Export { since, until } => export(&pool, &since, until.as_deref()).await,
        AuditCommand::Checkpoint => {
            let key = config.security.audit_key()?.context(
                "no checkpoint key: set security.audit_signing_key (CYNODE__SECURITY__AUDIT_SIGNING_KEY); \
                 `cynode audit keygen` makes one",
            )?;
            match checkpoint::checkpoint(&pool, &key).await? {
                Some(seq) => println!("signed a checkpoint at entry {seq}"),
                None => println!("nothing to sign: the chain head is checkpointed already (or the log is empty)"),
            }
            Ok(())
        }
        AuditCommand::Keygen => Ok(()),
    };
    pool.close().await;
    result
}

async fn verify(pool: &sqlx::PgPool, config: &Config, public_key: Option<&str>, json: bool) -> anyhow::Result<()> {
    let key = match public_key {
        Some(p) => Some(checkpoint::parse_public_key(p).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?),
        None => config.security.audit_verifying_key()?,
    };
    let report = audit::verify(pool, key.as_ref()).await?;
    if json {
        let v = serde_json::json!({
            "ok": report.broken.is_none(),
            "entries": report.entries,
            "head": report.head,
            "checkpoints_checked": report.checkpoints_checked,
            "last_checkpoint": report.last_checkpoint,
            "checkpoints_unchecked": report.checkpoints_unchecked,
            "broken_at": report.broken.as_ref().map(audit::Broken::seq),
            "problem": report.broken.as_ref().map(ToString::to_string),
        });
        println!("{v}");
    } else if report.broken.is_none() {
        let cps = match report.last_checkpoint {
            Some(seq) => {
                format!("{} signed checkpoints verified, the newest at entry {seq}", report.checkpoints_checked)
            }
            None => "no signed checkpoint verified".to_string(),
        };
        println!("audit log intact: {} entries, head {}; {cps}", report.entries, report.head.unwrap_or(0));
    }
    if report.checkpoints_unchecked > 0 {
        eprintln!(
            "warning: {} checkpoints were not checked: no trusted public key (pass --public-key or set \
             security.audit_public_key / security.audit_signing_key)",
            report.checkpoints_unchecked
        );
    }
    if let Some(b) = report.broken {
        anyhow::bail!("audit log broken at entry {}: {b}", b.seq());
    }
    Ok(())
}

async fn export(pool: &sqlx::PgPool, since: &str, until: Option<&str>) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let since = super::subs::parse_when(since, now).context("--since")?;
    let until = until.map(|u| super::subs::parse_when(u, now)).transpose().context("--until")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let n = audit::export(pool, since, until, |e| -> anyhow::Result<()> {
        serde_json::to_writer(&mut out, &e)?;
        out.write_all(b"\n")?;
        Ok(())
    })
    .await?;
    out.flush()?;
    eprintln!("exported {n} audit entries");
    Ok(())
}
