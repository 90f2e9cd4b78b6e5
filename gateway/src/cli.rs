//! Command-line interface of the `cynode` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// CyNode: a chat-ops gateway that runs your team's commands and agents from Slack, Discord, Telegram and
/// webhooks, and streams the results back into the same thread.
#[derive(Debug, Parser)]
#[command(name = "cynode", version, propagate_version = true)]
pub struct Cli {
    /// YAML configuration file (see docs/configuration.md).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One machine, zero set-up: a private PostgreSQL (unless DATABASE_URL is set), the gateway and a node agent.
    Up(RunArgs),
    /// Production: the gateway against the PostgreSQL in DATABASE_URL (stateless; run several replicas).
    Serve(RunArgs),
    /// Apply pending database migrations to DATABASE_URL and exit.
    Migrate,
    /// Print a fresh master key for `security.master_key` (32 random bytes, base64).
    Keygen,
}

/// Options shared by `up` and `serve`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Bootstrap file to import at start (installs, node keys, templates, policy, subscriptions).
    #[arg(long, value_name = "FILE")]
    pub bootstrap: Option<PathBuf>,
    /// CyNode data directory for the embedded PostgreSQL and the local master key (`up` only).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}
