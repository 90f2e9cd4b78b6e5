//! What each `cynode-node` subcommand does. Failures surface as one line saying what is wrong and what to
//! do about it.

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::agent::{Agent, prepare};
use crate::cli::{BuildArgs, Cli, Command, ImagesCommand, NodeArgs};
use crate::config::{AgentConfig, Env, ExecutorConfig};
use crate::executor::docker::{DEFAULT_ENDPOINT, connect_to};
use crate::images::build_busybox_image;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli, env: Env) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let config = AgentConfig::from_cli(&args, &env)?;
            Agent::run(config, shutdown_on_signals()?).await
        }
        Command::Probe(args) => probe(&args, &env).await,
        Command::Images(ImagesCommand::Build(args)) => build(&args, &env).await,
    }
}

/// A channel that turns `true` at the first SIGTERM or SIGINT; a second one exits at once.
fn shutdown_on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "stop requested: taking no more jobs, cancelling running ones (send it again \
            to exit at once)"
        );
        let _ = tx.send(true);
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("error: stopped at once by a second signal; running jobs were abandoned");
        std::process::exit(130);
    });
    Ok(rx)
}

async fn probe(args: &NodeArgs, env: &Env) -> anyhow::Result<()> {
    let config = ExecutorConfig::from_args(args, env, "cynode-node-probe")?;
    let prepared = prepare(&config, false).await;
    let endpoint = config.docker_endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
    match (&prepared.engine, &prepared.docker_off) {
        (Some(e), _) => println!(
            "engine     {} {} (API {}, {}/{}, kernel {}) at {endpoint}",
            e.product, e.version, e.api_version, e.os, e.arch, e.kernel_version
        ),
        (None, Some(why)) => println!("engine     none: {why}"),
        (None, None) => println!("engine     none"),
    }
    let executors: Vec<&str> = prepared
        .executors()
        .iter()
        .map(|e| if e.as_str() == "host" { "host (NO ISOLATION)" } else { e.as_str() })
        .collect();
    println!("executors  {}", if executors.is_empty() { "none".to_owned() } else { executors.join(", ") });
    for (name, image) in prepared.templates() {
        println!("template   {name} = {image}");
    }
    for t in &prepared.missing {
        println!("missing    {} = {} (image not on the engine; not offered)", t.name, t.image);
    }
    for label in &args.labels {
        println!("label      {label}");
    }
    println!("max jobs   {}", args.max_jobs.unwrap_or(crate::config::DEFAULT_MAX_JOBS));
    if prepared.gpus.is_empty() {
        println!("gpus       none");
    }
    for g in &prepared.gpus {
        println!("gpu        {} ({} MiB)", g.name, g.memory_mb);
    }
    if !prepared.models.is_empty() {
        println!("models     {}", prepared.models.join(", "));
    }
    if executors.is_empty() {
        anyhow::bail!("this node has no executor to offer");
    }
    Ok(())
}

async fn build(args: &BuildArgs, env: &Env) -> anyhow::Result<()> {
    let endpoint = args.docker_host.clone().or_else(|| env.docker_host());
    let engine = connect_to(endpoint.as_deref()).await?;
    let image = build_busybox_image(&engine, &args.tag).await?;
    if image.built {
        println!("built {} ({})", image.tag, image.id);
    } else {
        println!("{} is up to date ({})", image.tag, image.id);
    }
    Ok(())
}
