//! Bearer API-token authentication and role checks for the user API.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_orchestrator::api_tokens::{self, ApiToken, Role};
use cynode_orchestrator::tasks::Origin;
use cynode_orchestrator::views::Scope;

use crate::error::ApiError;
use crate::server::AppState;

/// The authenticated caller of a user-API request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token presented (never the secret itself).
    pub token: ApiToken,
}

impl Caller {
    /// What the caller may see: its install, or everything for a global token.
    pub fn scope(&self) -> Scope {
        Scope { install_id: self.token.install_id }
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        self.token.role()
    }

    /// Refuses with 403 unless the caller has at least `min`.
    ///
    /// # Errors
    /// 403 `forbidden`.
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role() >= min {
            return Ok(());
        }
        Err(ApiError::client(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs a token with role {} or higher; this token is {}", min.as_str(), self.token.role),
        ))
    }

    /// Who commands run as: the token's name, within its install, from source `api`.
    pub fn origin(&self) -> Origin {
        Origin {
            install_id: self.token.install_id,
            requester: self.token.name.clone(),
            source: "api".into(),
            ..Origin::default()
        }
    }
}

/// The answer to a request without a valid token: 401 with a JSON error and `WWW-Authenticate`.
fn unauthorized() -> Response {
    let mut r = ApiError::client(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing, malformed, unknown or revoked API token; send `Authorization: Bearer cyn_…` (create one with \
         `cynode admin token create`)",
    )
    .into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"cynode\""));
    r
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(presented) = presented else {
            state.ingress.refusals.note("api", "missing_token");
            return Err(unauthorized());
        };
        match api_tokens::verify(&state.pool, presented).await {
            Ok(Some(token)) => Ok(Self { token }),
            Ok(None) => {
                state.ingress.refusals.note("api", "invalid_token");
                Err(unauthorized())
            }
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}
