//! Gateway integration tests: configuration, HTTP endpoints over a real socket, and the `cynode` binary.

mod api_cli;
mod api_events;
mod api_memories;
mod api_openapi;
mod api_subs;
mod api_support;
mod api_tasks;
mod api_usage;
mod cli;
mod config;
mod health;
mod ingress_discord;
mod ingress_interpreter;
mod ingress_rejects;
mod ingress_server;
mod ingress_slack;
mod ingress_support;
mod ingress_telegram;
mod ingress_webhook;
mod outbox_events;
mod providers_cli;
mod receiver;
mod restart;
mod stream_pool;
mod subs_cli;
mod support;
