//! End-to-end tests with real processes: `cynode serve` on a fresh PostgreSQL database, real `cynode-node`
//! agents (host and Docker executors), real sockets. Build the binaries first, with the same target
//! directory:
//!
//! ```text
//! cargo build -p cynode-gateway -p cynode-node-agent && cargo test -p cynode-tests --test e2e
//! ```
//!
//! The Docker test needs a reachable engine and fails (never skips) without one.

mod agent_approval;
mod agent_provider;
mod agent_slack;
mod agent_stop;
mod approval_slack;
mod chat;
mod chat_slack;
mod discord_e2e;
mod docker;
mod failover;
mod host;
mod inference;
mod memory_slack;
mod orphans;
mod proxy;
mod refusals;
mod restart_slack;
mod stream_slack;
mod support;
mod telegram_e2e;
