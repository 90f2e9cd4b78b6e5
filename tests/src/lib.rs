//! CyNode test support, shared by every crate's integration tests:
//!
//! - [`TestDb`]: one private embedded PostgreSQL per machine and test run, shared by all test processes, and a
//!   fresh, migrated database per test (cloned from a template, so it takes milliseconds);
//! - [`process`]: spawning the real `cynode` and `cynode-node` binaries and reading what they print;
//! - [`cluster`]: N `cynode serve` replicas behind a real HAProxy, each reaching PostgreSQL through a
//!   [`tcp_proxy::TcpProxy`] the test controls, with node agents; any process can be killed, paused or restarted;
//! - [`webhooks`]: a Standard Webhooks receiver that verifies every delivery with two independent verifiers;
//! - quiet logs unless `TEST_LOG=1`.

pub mod cluster;
pub mod db;
pub mod fakes;
pub mod process;
pub mod tcp_proxy;
pub mod webhooks;

pub use db::TestDb;
pub use process::{BinProcess, bin_path};

/// Installs a test log subscriber when `TEST_LOG=1` (otherwise tests stay quiet).
pub fn init_test_log() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt().with_env_filter("debug,sqlx=warn,hyper=info").with_test_writer().try_init();
    }
}
