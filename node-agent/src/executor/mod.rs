//! Executors that run leased jobs.
//!
//! - [`docker`]: hardened, throw-away container sandboxes on the local engine (the default);
//! - [`host`]: `sh -c` directly on the node, **no isolation** (development only, off unless enabled).
//!
//! Both stream output as numbered [`OutputChunk`]s (one sequence across stdout and stderr, so sorting by
//! `seq` restores the interleaving), cap it at the job's limit with a [`TRUNCATION_MARKER`] notice, stop
//! the job on timeout or cancel, and end with a [`RunOutcome`].
//! - [`inference`]: prompts to an OpenAI-compatible server on the node, tokens streamed back as chunks.

pub mod docker;
pub mod host;
pub mod inference;

pub use docker::{ExitStatusKind, OutputChunk, OutputStream, RunOutcome, TRUNCATION_MARKER};
