//! CyNode orchestrator: the store (PostgreSQL + pgvector, embedded or external), secrets at rest, the
//! bootstrap import, the audit log, installs and the durable record of inbound requests (with their
//! interpretation), commands, approval policy, node registration and dispatch with fenced leases, and the
//! usage ledger with daily token budgets, and memory (scoped, provenance-aware, hybrid recall on pgvector). It never speaks HTTP itself: the gateway exposes it.

pub mod admin;
pub mod agent;
pub mod api_tokens;
pub mod audit;
pub mod bootstrap;
pub mod commands;
pub mod console;
pub mod crypto;
pub mod dispatch;
pub mod inbound;
pub mod installs;
pub mod memory;
pub mod nodes;
pub mod outbound_guard;
pub mod outbox;
pub mod policy;
pub mod providers;
pub mod store;
pub mod stream;
pub mod tasks;
pub mod usage;
pub mod views;
