//! The `cynode-loadgen` binary; everything is in the library.

fn main() -> std::process::ExitCode {
    cynode_loadgen::main_entry()
}
