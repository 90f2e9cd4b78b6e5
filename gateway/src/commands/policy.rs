//! `cynode policy test|import|explain`: the team's Rego policy. `test` needs no database; `import` and
//! `explain` work on the database (`DATABASE_URL`, else the embedded PostgreSQL of a running `cynode up`).

use anyhow::Context as _;
use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::policy::rego::{self, Mode, RegoPolicy};

use crate::cli::PolicyCommand;
use crate::config::Config;

fn read(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs `cynode policy …`.
///
/// # Errors
/// Any failure, phrased for the user; a policy that does not compile names file and line.
pub(super) async fn run(cmd: PolicyCommand, config: &Config) -> anyhow::Result<()> {
    if let PolicyCommand::Test { file, input } = &cmd {
        let policy = RegoPolicy::compile(&file.display().to_string(), &read(file)?).map_err(anyhow::Error::msg)?;
        let input: serde_json::Value =
            serde_json::from_str(&read(input)?).with_context(|| format!("{} is not JSON", input.display()))?;
        let decision = policy.decide(&input).map_err(|e| anyhow::anyhow!("evaluating the policy failed: {e}"))?;
        println!("{}", decision.to_json());
        return Ok(());
    }
    let is_root = cynode_orchestrator::store::embedded::effective_uid() == 0;
    let pool = super::admin::database(config, &config.data_dir(is_root)).await?;
    let result = async {
        match cmd {
            PolicyCommand::Test { .. } => Ok(()),
            PolicyCommand::Import { file, install, mode, on_error } => {
                let mode = match mode.as_str() {
                    "shadow" => Mode::Shadow,
                    "enforce" => Mode::Enforce,
                    _ => anyhow::bail!("--mode is shadow or enforce"),
                };
                let fail_open = match on_error.as_str() {
                    "closed" => false,
                    "open" => true,
                    _ => anyhow::bail!("--on-error is closed or open"),
                };
                let install_id = match &install {
                    Some(i) => Some(super::team::install_id(&pool, i).await?),
                    None => None,
                };
                let name = file.display().to_string();
                rego::import(&pool, "cli", install_id, &name, &read(&file)?, mode, fail_open)
                    .await
                    .map_err(anyhow::Error::msg)?;
                let scope = install.map_or_else(|| "every install".to_string(), |i| format!("install `{i}`"));
                let mode_name = if mode == Mode::Enforce { "enforce" } else { "shadow" };
                println!("imported {name} for {scope}: mode {mode_name}, fails {on_error} on evaluation errors");
                Ok(())
            }
            PolicyCommand::Explain { job } => {
                let dispatcher = Dispatcher::new(pool.clone(), Default::default());
                let commands = Commands::new(pool.clone(), dispatcher, CommandSettings::default());
                let explained = commands
                    .explain(&job)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .with_context(|| format!("no job `{job}` (or several match; use more characters)"))?;
                println!("{}", serde_json::to_string_pretty(&explained)?);
                Ok(())
            }
        }
    }
    .await;
    pool.close().await;
    result
}
