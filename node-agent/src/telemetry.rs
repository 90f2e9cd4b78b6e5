//! Logging of the `cynode-node` binary: `tracing` to stderr, filtered by `RUST_LOG`, as text or JSON
//! lines (`CYNODE_LOG_FORMAT=json`). An embedding program keeps its own subscriber.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber (a second call does nothing).
pub(crate) fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|e| {
        eprintln!("warning: RUST_LOG={:?} is not a valid filter ({e}); logging at info", settings.filter);
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if settings.json { builder.json().try_init() } else { builder.try_init() };
}
