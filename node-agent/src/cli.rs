//! The `cynode-node` command line. Values are turned into an [`AgentConfig`](crate::config::AgentConfig)
//! by [`crate::config`], which also reads the environment; nothing here does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// CyNode node agent: registers with the orchestrator, leases jobs and runs them in hardened Docker
/// sandboxes (or, for development, directly on the host).
///
/// Environment: CYNODE_NODE_KEY (the node key, unless --key-file), CYNODE_ORCHESTRATOR_URL,
/// CYNODE_NODE_NAME, DOCKER_HOST, RUST_LOG, CYNODE_LOG_FORMAT=json|pretty.
#[derive(Debug, Parser)]
#[command(name = "cynode-node", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register with the orchestrator and run leased jobs until SIGTERM/SIGINT.
    Run(RunArgs),
    /// Build the built-in sandbox images on the local engine.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Print the container engine and the capabilities this node would offer, then exit.
    Probe(NodeArgs),
}

/// `cynode-node images …`.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build the busybox sandbox image (idempotent; nothing is pulled).
    Build(BuildArgs),
}

/// `cynode-node images build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Image tag to build.
    #[arg(long, default_value = "cynode/busybox:latest", value_name = "IMAGE")]
    pub tag: String,
    /// Container engine endpoint (default: DOCKER_HOST, else unix:///var/run/docker.sock).
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
}

/// `cynode-node run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Orchestrator base URL (default: CYNODE_ORCHESTRATOR_URL, else http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub orchestrator: Option<String>,
    /// File holding the node key (default: the CYNODE_NODE_KEY environment variable). The key is never
    /// accepted as an argument value, which other users could read from the process list.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Node name; re-registering with the same key and name keeps the node id (default:
    /// CYNODE_NODE_NAME, else the host name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// What the node offers.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// What the node offers (shared by `run` and `probe`).
#[derive(Debug, Args, Default)]
pub struct NodeArgs {
    /// Do not offer the Docker executor even when the engine is reachable.
    #[arg(long)]
    pub no_docker: bool,
    /// Offer the host executor: jobs run with `sh -c` on this machine with NO ISOLATION (development only).
    #[arg(long)]
    pub enable_host_executor: bool,
    /// Sandbox template this node offers, as NAME=IMAGE (repeatable; only these images ever run).
    /// Default: busybox=cynode/busybox:latest.
    #[arg(long = "template", value_name = "NAME=IMAGE")]
    pub templates: Vec<String>,
    /// Label, as KEY=VALUE (repeatable); jobs may require labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Jobs run at once (default 2).
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<u32>,
    /// Container engine endpoint (default: DOCKER_HOST, else unix:///var/run/docker.sock).
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
    /// Warm sandbox containers kept per template (default 2; 0 disables): started, hardened and idle, so
    /// a job with the template's usual limits starts in milliseconds. Each serves one job, then is removed.
    #[arg(long, value_name = "N")]
    pub warm_pool: Option<usize>,
    /// Owner label of this agent's sandboxes; leftovers with it are removed at start (default:
    /// cynode-node-NAME).
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Base URL of an OpenAI-compatible inference server on this node (Ollama, vLLM, llama.cpp), e.g.
    /// http://127.0.0.1:11434; enables the inference executor. Its key, if any: CYNODE_INFERENCE_API_KEY.
    #[arg(long, value_name = "URL")]
    pub inference_url: Option<String>,
    /// Model jobs may use (repeatable; default: every model the server lists).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Model for jobs that name none (default: the first the server lists).
    #[arg(long, value_name = "NAME")]
    pub default_model: Option<String>,
}
