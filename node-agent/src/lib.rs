//! CyNode node agent: registers with the orchestrator, leases jobs and runs them in executors
//! (hardened Docker sandboxes, inference, host). Talks to the orchestrator over HTTP only.

pub mod executor;
pub mod images;
