//! Orchestrator integration tests against a real PostgreSQL.

mod agent;
mod agent_roles;
mod approvals;
mod audit;
mod bootstrap;
mod commands;
mod dispatch;
mod dispatch_finish;
mod embedded;
mod memory;
mod migrations;
mod node_state;
mod outbox;
mod policy_rego;
mod providers;
mod roles;
mod roles_grants;
mod stream;
mod stream_budget;
mod stream_live;
mod stream_slack;
mod stream_slack_live;
mod stream_turn;
mod support;
mod unschedulable;
mod usage;
