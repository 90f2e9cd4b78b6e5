//! Orchestrator integration tests against a real PostgreSQL.

mod audit;
mod commands;
mod dispatch;
mod support;
mod bootstrap;
mod embedded;
mod migrations;
