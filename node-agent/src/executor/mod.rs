//! Executors that run leased jobs.
pub mod docker;
