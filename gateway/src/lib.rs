//! CyNode gateway: the axum HTTP server (platform ingress, user API, health and metrics), the typed
//! configuration, and the `cynode` command line. It wires the adapters, the orchestrator and — for
//! `cynode up` — an in-process node agent.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod metrics;
pub mod providers;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod telemetry;

use std::process::ExitCode;

use clap::Parser as _;

/// Entry point of the `cynode` binary: parses arguments, runs, and prints any failure as one line.
pub fn main_entry() -> ExitCode {
    let cli = cli::Cli::parse();
    let env = config::process_env();
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
