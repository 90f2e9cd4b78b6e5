//! CyNode orchestrator: the store (PostgreSQL + pgvector, embedded or external), secrets at rest, the
//! bootstrap import, the audit log, commands, approval policy, node registration and dispatch with fenced
//! leases. It never speaks HTTP itself: the gateway exposes it.

pub mod audit;
pub mod bootstrap;
pub mod commands;
pub mod crypto;
pub mod dispatch;
pub mod nodes;
pub mod policy;
pub mod store;
pub mod tasks;
