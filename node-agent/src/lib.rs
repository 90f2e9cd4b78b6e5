//! CyNode node agent: registers with the orchestrator, leases jobs and runs them in executors
//! (hardened Docker sandboxes, host commands for development; inference later). Talks to the
//! orchestrator over HTTP only (the node protocol, `docs/node-protocol.md`).
//!
//! - [`Agent`] is the runtime; the `cynode-node` binary and `cynode up` both run it from an
//!   [`AgentConfig`];
//! - [`client::OrchestratorClient`] speaks the node protocol;
//! - [`executor`] holds the Docker and host executors, [`images`] builds the sandbox images.

pub mod agent;
pub mod cli;
pub mod client;
mod commands;
pub mod config;
pub mod executor;
pub mod gpu;
pub mod images;
mod telemetry;

use std::process::ExitCode;

use clap::Parser as _;

pub use agent::{Agent, AgentHandle, AgentStatus};
pub use config::{AgentConfig, AgentTiming, Env, ExecutorConfig, Template};

/// Entry point of the `cynode-node` binary: parses arguments, runs the command, and prints any failure as
/// one `error: …` line with a non-zero exit code.
pub fn main_entry() -> ExitCode {
    let cli = cli::Cli::parse();
    let env = Env::from_process();
    telemetry::init(&env.log());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli, env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
