//! [`OrchestratorClient`]: the node API over HTTP, with the orchestrator's base URL as configuration.
//!
//! It registers with the pre-shared node key, keeps the short-lived token it gets back, renews it at
//! three quarters of its lifetime (less a second), and registers again (once per call) when a call is refused with 401
//! (`token_expired`, `invalid_token`, `unknown_node`). Failures are classified in [`ClientError`];
//! callers retry [`ClientError::Transient`] ones with a [`Backoff`]. Neither the key nor the token is
//! ever logged or put in an error message (both are sent only as `Authorization` headers, which reqwest
//! marks sensitive).

mod backoff;
mod error;

use std::time::Duration;

use cynode_protocol::{
    FinishAck, FinishWithOutput, HeartbeatRequest, HeartbeatResponse, Lease, LeaseRef, LeaseRequest, LeaseResponse,
    OutputAck, OutputBatch, RegisterRequest, RegisterResponse, paths,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

pub use backoff::Backoff;
pub use error::ClientError;

/// How to reach the orchestrator and what to register as.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL (`http://host:port`, optionally with a path prefix), without `/v1/node/…`.
    pub base_url: String,
    /// The pre-shared node key.
    pub node_key: SecretString,
    /// Sent on every (re-)registration: name, protocol versions, capabilities.
    pub registration: RegisterRequest,
    /// HTTP timeout of every call but the long poll (which gets its wait plus this).
    pub request_timeout: Duration,
}

/// What the orchestrator said at the last registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// The node's id (stable for one key and name).
    pub node_id: Uuid,
    /// The negotiated protocol version.
    pub protocol_version: u32,
    /// How often to heartbeat held leases.
    pub heartbeat_interval: Duration,
    /// A lease not heartbeated for this long is re-queued.
    pub lease_ttl: Duration,
    /// The longest long poll the orchestrator grants.
    pub max_wait: Duration,
    /// Lifetime of the token.
    pub token_lifetime: Duration,
}

struct Session {
    token: SecretString,
    generation: u64,
    renew_at: Instant,
    expires_at: Instant,
    info: SessionInfo,
}

/// The node API client. Share it behind an `Arc`; calls may run concurrently.
pub struct OrchestratorClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    registration: RegisterRequest,
    timeout: Duration,
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for OrchestratorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorClient")
            .field("base", &self.base)
            .field("node", &self.registration.name)
            .finish_non_exhaustive()
    }
}

impl OrchestratorClient {
    /// A client for `config.base_url`. Nothing is sent until the first call.
    ///
    /// # Errors
    /// [`ClientError::Fatal`] when the URL is unusable or the HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let fatal = |message: String| ClientError::Fatal { status: 0, code: "configuration".into(), message };
        let url = crate::config::parse::url(&config.base_url).map_err(|e| fatal(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("cynode-node/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fatal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: url.as_str().trim_end_matches('/').to_owned(),
            key: config.node_key,
            registration: config.registration,
            timeout: config.request_timeout,
            session: Mutex::new(None),
        })
    }

    /// The orchestrator base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Registers now (also when a valid token is held) and returns what the orchestrator said.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] (`unknown_key`), [`ClientError::Fatal`] (`not_granted`,
    /// `unsupported_version`, `invalid_request`), [`ClientError::Transient`].
    pub async fn register(&self) -> Result<SessionInfo, ClientError> {
        let mut slot = self.session.lock().await;
        self.register_locked(&mut slot).await
    }

    /// The last registration, if any.
    pub async fn session(&self) -> Option<SessionInfo> {
        self.session.lock().await.as_ref().map(|s| s.info)
    }

    /// Long-polls up to `wait` for up to `max_jobs` leases.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn lease(&self, max_jobs: u32, wait: Duration) -> Result<Vec<Lease>, ClientError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let body = LeaseRequest { max_jobs, wait_ms };
        let r: LeaseResponse = self.call(paths::LEASE, &body, wait + self.timeout).await?;
        Ok(r.leases)
    }

    /// Extends the named leases; the answer lists cancellations and leases no longer held.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn heartbeat(&self, leases: &[LeaseRef]) -> Result<HeartbeatResponse, ClientError> {
        self.call(paths::HEARTBEAT, &HeartbeatRequest { leases: leases.to_vec() }, self.timeout).await
    }

    /// Uploads output chunks of a held lease.
    ///
    /// # Errors
    /// [`ClientError::Stale`] when the lease is gone; see [`ClientError`].
    pub async fn output(&self, batch: &OutputBatch) -> Result<OutputAck, ClientError> {
        self.call(paths::OUTPUT, batch, self.timeout).await
    }

    /// Records the outcome of a held lease (idempotent: retry with the identical request). Carry `output` only
    /// when protocol 2 was negotiated ([`SessionInfo::protocol_version`]).
    ///
    /// # Errors
    /// [`ClientError::Stale`], [`ClientError::Conflict`] (`conflicting_finish`); see [`ClientError`].
    pub async fn finish(&self, req: &FinishWithOutput) -> Result<FinishAck, ClientError> {
        self.call(paths::FINISH, req, self.timeout).await
    }

    async fn register_locked(&self, slot: &mut Option<Session>) -> Result<SessionInfo, ClientError> {
        let r: RegisterResponse =
            self.post(paths::REGISTER, self.key.expose_secret(), &self.registration, self.timeout).await?;
        let lifetime = Duration::from_secs(r.token_expires_in_s);
        let now = Instant::now();
        let info = SessionInfo {
            node_id: r.node_id,
            protocol_version: r.protocol_version,
            heartbeat_interval: Duration::from_millis(r.heartbeat_interval_ms.max(50)),
            lease_ttl: Duration::from_millis(r.lease_ttl_ms),
            max_wait: Duration::from_millis(r.max_wait_ms),
            token_lifetime: lifetime,
        };
        let generation = slot.as_ref().map_or(1, |s| s.generation + 1);
        *slot = Some(Session {
            token: SecretString::from(r.token),
            generation,
            // Expiry is in whole seconds: renew a second early so truncation never outruns us.
            renew_at: now + lifetime.mul_f64(0.75).saturating_sub(Duration::from_secs(1)),
            expires_at: now + lifetime,
            info,
        });
        tracing::debug!(node.id = %info.node_id, token_lifetime_s = lifetime.as_secs(), "registered");
        Ok(info)
    }

    /// A usable token and its generation, registering or renewing first when due.
    async fn token(&self) -> Result<(SecretString, u64), ClientError> {
        let mut slot = self.session.lock().await;
        let now = Instant::now();
        let current = slot.as_ref().map(|s| (s.token.clone(), s.generation, s.renew_at, s.expires_at));
        match current {
            Some((token, generation, renew_at, _)) if now < renew_at => {
                return Ok((token, generation));
            }
            Some((token, generation, _, expires_at)) if now < expires_at => {
                match self.register_locked(&mut slot).await {
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, "could not renew the node token; using the current one meanwhile");
                        if let Some(s) = slot.as_mut() {
                            s.renew_at = now + Duration::from_secs(1);
                        }
                        return Ok((token, generation));
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => {
                self.register_locked(&mut slot).await?;
            }
        }
        slot.as_ref()
            .map(|s| (s.token.clone(), s.generation))
            .ok_or_else(|| ClientError::Transient("no registration".into()))
    }

    /// Forgets the token of `generation` (refused by the orchestrator) unless it was replaced already.
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_mut().filter(|s| s.generation == generation) {
            s.renew_at = Instant::now();
            s.expires_at = s.renew_at;
        }
    }

    /// An authenticated call; on 401, registers again and retries once.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &'static str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let (token, generation) = self.token().await?;
        match self.post(path, token.expose_secret(), body, timeout).await {
            Err(ClientError::Unauthorized { code, .. }) => {
                tracing::info!(code, "the orchestrator refused the node token; registering again");
                self.invalidate(generation).await;
                let (token, _) = self.token().await?;
                self.post(path, token.expose_secret(), body, timeout).await
            }
            other => other,
        }
    }

    async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        bearer: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| ClientError::transport(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::transport(&e))?;
        if !status.is_success() {
            return Err(ClientError::from_response(status, &bytes, path));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transient(format!("{path} answered with an unreadable body: {e}")))
    }
}
