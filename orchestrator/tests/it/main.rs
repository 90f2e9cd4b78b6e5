//! Orchestrator integration tests against a real PostgreSQL.

mod audit;
mod bootstrap;
mod embedded;
mod migrations;
