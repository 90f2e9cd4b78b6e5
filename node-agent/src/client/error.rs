//! What can go wrong talking to the orchestrator, classified by what the caller should do about it.

use cynode_protocol::ErrorBody;
use reqwest::StatusCode;

/// A failed orchestrator call. Messages never contain the node key or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// 409 `stale_lease` (or 404 `unknown_job`): the lease is no longer ours. Stop the job, write nothing
    /// more about it.
    #[error("the lease is no longer held ({code}): {message}")]
    Stale {
        /// `stale_lease` or `unknown_job`.
        code: String,
        /// The orchestrator's explanation.
        message: String,
    },
    /// Another 409, e.g. `conflicting_finish`: a different outcome was already recorded.
    #[error("refused as conflicting ({code}): {message}")]
    Conflict {
        /// Stable code.
        code: String,
        /// The orchestrator's explanation.
        message: String,
    },
    /// 401 even after registering again (`unknown_key`, `token_expired`, `invalid_token`, `unknown_node`).
    #[error("the orchestrator refused the node's credentials ({code}): {message}")]
    Unauthorized {
        /// Stable code.
        code: String,
        /// The orchestrator's explanation.
        message: String,
    },
    /// Worth retrying: connection failures, timeouts, 408, 429, 5xx, unreadable answers.
    #[error("the orchestrator is unreachable or failing: {0}")]
    Transient(String),
    /// Not worth retrying: other 4xx (bad request, not granted, unsupported version, wrong URL).
    #[error("the orchestrator refused the request (HTTP {status}, {code}): {message}")]
    Fatal {
        /// HTTP status.
        status: u16,
        /// Stable code (or `http_<status>` when the answer had none).
        code: String,
        /// The orchestrator's explanation.
        message: String,
    },
}

impl ClientError {
    /// Whether retrying the same call later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The stable code of a refusal, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Stale { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Fatal { code, .. } => Some(code),
            Self::Transient(_) => None,
        }
    }

    /// Classifies a transport error (the URL is shown; headers, and so credentials, never are).
    pub(crate) fn transport(err: &reqwest::Error) -> Self {
        let what = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "cannot connect"
        } else if err.is_decode() {
            "unreadable answer"
        } else {
            "request failed"
        };
        let detail = std::error::Error::source(err).map(ToString::to_string).unwrap_or_else(|| err.to_string());
        Self::Transient(format!("{what}: {detail}"))
    }

    /// Classifies a non-2xx answer from its status and body.
    pub(crate) fn from_response(status: StatusCode, body: &[u8], path: &str) -> Self {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let code = parsed.as_ref().map_or_else(|| format!("http_{}", status.as_u16()), |b| b.error.code.clone());
        let message = parsed.map_or_else(
            || format!("{path} answered {status} without a CyNode error body; is the orchestrator URL right?"),
            |b| b.error.message,
        );
        match status.as_u16() {
            401 => Self::Unauthorized { code, message },
            409 if code == "stale_lease" => Self::Stale { code, message },
            404 if code == "unknown_job" => Self::Stale { code, message },
            409 => Self::Conflict { code, message },
            408 | 429 | 500..=599 => Self::Transient(format!("{path} answered {status} ({code}): {message}")),
            s => Self::Fatal { status: s, code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ClientError {
        ClientError::from_response(StatusCode::from_u16(status).expect("status"), body.as_bytes(), "/v1/node/x")
    }

    fn body(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#)
    }

    #[test]
    fn answers_are_classified_by_status_and_code() {
        assert!(matches!(classify(409, &body("stale_lease")), ClientError::Stale { .. }));
        assert!(matches!(classify(404, &body("unknown_job")), ClientError::Stale { .. }));
        assert!(matches!(classify(409, &body("conflicting_finish")), ClientError::Conflict { .. }));
        assert!(matches!(classify(401, &body("token_expired")), ClientError::Unauthorized { .. }));
        assert!(classify(503, "").is_transient());
        assert!(classify(429, &body("slow_down")).is_transient());
        assert!(matches!(classify(403, &body("not_granted")), ClientError::Fatal { status: 403, .. }));
        assert!(matches!(classify(400, &body("invalid_request")), ClientError::Fatal { status: 400, .. }));
    }

    #[test]
    fn a_foreign_404_points_at_the_url() {
        let e = classify(404, "<html>not found</html>");
        assert_eq!(e.code(), Some("http_404"));
        assert!(e.to_string().contains("orchestrator URL"), "{e}");
    }
}
