//! Errors of the Docker sandbox executor, phrased for the person who has to act on them.

use bollard::errors::Error as BollardError;

/// Why a sandbox could not be run (or could not be run to a known end).
///
/// A job that ran and failed (non-zero exit, timeout, OOM, too much output, cancel) is **not** an
/// error: it is a [`RunOutcome`](super::RunOutcome). These variants mean the executor itself could
/// not do its work. Messages never contain environment values or other job data.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The container engine socket could not be reached (not running, wrong `DOCKER_HOST`,
    /// no permission on the socket).
    #[error(
        "cannot reach the container engine at {endpoint}: {detail}. Is Docker (or Podman's \
         Docker-compatible socket) running, and may this user open the socket? Set DOCKER_HOST \
         to point elsewhere"
    )]
    EngineUnavailable {
        /// Where we tried to connect (socket path or URL).
        endpoint: String,
        /// What went wrong, from the transport.
        detail: String,
    },
    /// The job asked for an image that no template of this node allows.
    #[error("image {0:?} is not allowed on this node; use one of the node's templates")]
    ImageNotAllowed(String),
    /// The image is allowed but not present in the local engine (there is no registry to pull from).
    #[error(
        "image {0:?} is not present on this node; build it with `cynode-node images build` \
         (sandbox images are built locally, never pulled)"
    )]
    ImageMissing(String),
    /// The job specification is invalid (empty command, bad environment name, zero limits, …).
    #[error("invalid sandbox specification: {0}")]
    InvalidSpec(String),
    /// The engine answered, but refused or failed an operation.
    #[error("container engine failed to {action}: {detail}")]
    Engine {
        /// What we were doing, e.g. "create the container".
        action: &'static str,
        /// The engine's explanation.
        detail: String,
    },
}

impl ExecError {
    /// Maps a bollard error raised while doing `action` into an [`ExecError`].
    ///
    /// Transport failures (socket missing, connection refused or reset, request timeout) become
    /// [`ExecError::EngineUnavailable`]; everything else becomes [`ExecError::Engine`].
    pub(crate) fn engine(endpoint: &str, action: &'static str, err: BollardError) -> Self {
        match err {
            BollardError::SocketNotFoundError(path) => {
                Self::EngineUnavailable { endpoint: path, detail: "the socket does not exist".to_owned() }
            }
            BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::HyperResponseError { .. } => Self::EngineUnavailable {
                endpoint: endpoint.to_owned(),
                detail: format!("{err} (while trying to {action})"),
            },
            BollardError::DockerResponseServerError { status_code, message } => {
                Self::Engine { action, detail: format!("{message} (HTTP {status_code})") }
            }
            other => Self::Engine { action, detail: other.to_string() },
        }
    }
}

/// True when the engine answered "404 not found" (image or container does not exist).
pub(crate) fn is_not_found(err: &BollardError) -> bool {
    matches!(err, BollardError::DockerResponseServerError { status_code: 404, .. })
}
