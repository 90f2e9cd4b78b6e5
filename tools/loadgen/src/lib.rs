//! `cynode-loadgen`: an open-loop load generator for the ingress benchmark (`scripts/bench-ingress`).
//!
//! Requests are launched on a fixed schedule — request *i* of a step at `start + i / rate` — whatever the
//! server does, and each latency is measured from the request's **scheduled** send time, so a slow server
//! cannot slow the generator down and hide its own queueing (no coordinated omission). Every request is a unique,
//! correctly signed Slack `event_callback` with an `app_mention` (Slack's v0 HMAC over the exact bytes sent).
//!
//! - `cynode-loadgen run --url URL --label NAME [--rates 1000,2000,5000] [--duration-s 10]` prints one JSON line
//!   per offered rate (see [`Step`]).
//! - `cynode-loadgen report FILE…` prints a Markdown table of the medians per target and rate, with the ratio of
//!   every target to the first (the baseline).
//! - `cynode-loadgen stored --database-url URL` says what a CyNode database holds afterwards (every acknowledged
//!   event must be there).

mod event;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser as _;

pub use report::{Step, summarize};
pub use run::{RunArgs, run};

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(name = "cynode-loadgen", version)]
pub enum Cli {
    /// Send signed Slack events at fixed offered rates and print one JSON line per rate.
    Run(RunArgs),
    /// Print the medians of JSON lines from earlier runs as a Markdown table.
    Report {
        /// Files with JSON lines written by `run`.
        files: Vec<std::path::PathBuf>,
    },
    /// Print what a CyNode database holds: inbound events, tasks, and tasks not yet interpreted.
    Stored {
        /// The database.
        #[arg(long)]
        database_url: String,
    },
}

/// Entry point of the binary.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli {
            Cli::Run(args) => run(&args).await,
            Cli::Report { files } => {
                let mut steps = Vec::new();
                for f in files {
                    let text =
                        std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
                    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
                        steps.push(serde_json::from_str::<Step>(line)?);
                    }
                }
                print!("{}", summarize(&steps));
                Ok(())
            }
            Cli::Stored { database_url } => {
                let pool = sqlx::PgPool::connect(&database_url).await?;
                let (events, tasks, waiting): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM inbound_events), (SELECT count(*) FROM tasks),
                            (SELECT count(*) FROM tasks WHERE state = 'received')",
                )
                .fetch_one(&pool)
                .await?;
                println!("stored: {events} inbound events, {tasks} tasks, {waiting} not yet interpreted");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
