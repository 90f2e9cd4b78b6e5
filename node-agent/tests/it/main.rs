//! Integration tests of the node agent against the real container engine on this machine.
//! Run with `cargo test -p cynode-node-agent`; an unreachable engine fails the run.

mod basics;
mod embed;
mod engine_failure;
mod hostile;
mod images;
mod inference;
mod lifecycle;
mod pool;
mod proxy;
mod support;
mod warm;
