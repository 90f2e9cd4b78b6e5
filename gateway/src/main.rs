//! The `cynode` binary: a thin shell over [`cynode_gateway::main_entry`].

fn main() -> std::process::ExitCode {
    cynode_gateway::main_entry()
}
