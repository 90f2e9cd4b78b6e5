//! The one error type handlers return: 4xx carry a clear, actionable message; 5xx carry a generic message and
//! an id, and the cause is logged once under that id. Database errors never reach a response body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to an HTTP client.
#[derive(Debug)]
pub enum ApiError {
    /// The client can fix this: status, stable code and message.
    Client {
        /// 4xx status.
        status: StatusCode,
        /// Stable machine code, e.g. `bad_request`.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// Our fault; the cause is logged, not returned.
    Internal(anyhow::Error),
}

impl ApiError {
    /// A 4xx error.
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client { status, code, message: message.into() }
    }
}

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Client { status, code, message } => {
                (status, Json(serde_json::json!({ "error": { "code": code, "message": message } }))).into_response()
            }
            Self::Internal(cause) => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(error.id = %id, error = format!("{cause:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({ "error": {
                        "code": "internal",
                        "message": format!("internal error; quote id {id} when reporting it"),
                        "id": id.to_string(),
                    }})),
                )
                    .into_response()
            }
        }
    }
}
