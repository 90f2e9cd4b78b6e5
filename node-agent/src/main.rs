//! The `cynode-node` binary: the CyNode node agent. See `cynode-node --help`; everything lives in the
//! `cynode_node_agent` library.

fn main() -> std::process::ExitCode {
    cynode_node_agent::main_entry()
}
