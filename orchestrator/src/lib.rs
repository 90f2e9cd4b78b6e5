//! CyNode orchestrator: the store (PostgreSQL + pgvector, embedded or external), secrets at rest, the
//! bootstrap import, the audit log, and — as later work lands — commands, policy and approvals, scheduling
//! with leases, thread streaming, the webhook outbox and memory. It never speaks HTTP itself.

pub mod audit;
pub mod bootstrap;
pub mod crypto;
pub mod store;
