//! Gateway integration tests: configuration, HTTP endpoints over a real socket, and the `cynode` binary.

mod cli;
mod config;
mod health;
mod support;
