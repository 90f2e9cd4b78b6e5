//! The `cynode-node` binary.
fn main() {}
