//! A small client of the user API for the CLI: JSON calls with the bearer token, and a Server-Sent Events
//! reader that resumes with `Last-Event-ID`.

use std::path::Path;

use futures_util::StreamExt as _;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::cli::ClientArgs;
use crate::routes::api::model::ErrorBody;

/// A failed API call, phrased for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{message} ({status} {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Message.
        message: String,
    },
    /// The gateway could not be reached or the answer was unreadable.
    #[error("cannot talk to the CyNode API at {url}: {cause}")]
    Transport {
        /// Base URL.
        url: String,
        /// What went wrong.
        cause: String,
    },
}

/// A user-API client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

/// The token to use: `--token`/`CYNODE_TOKEN`, else the local token `cynode up` wrote into the data directory.
///
/// # Errors
/// When there is none.
pub fn resolve_token(args: &ClientArgs, data_dir: &Path) -> anyhow::Result<SecretString> {
    if let Some(t) = &args.token {
        return Ok(SecretString::from(t.trim().to_string()));
    }
    let path = data_dir.join(super::admin::LOCAL_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(SecretString::from(t.trim().to_string())),
        _ => anyhow::bail!(
            "no API token: pass --token or set CYNODE_TOKEN (create one with `cynode admin token create NAME`), or \
             run next to a `cynode up` data directory (looked for {})",
            path.display()
        ),
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`, if any.
    pub id: Option<String>,
    /// `event:` (default `message`).
    pub event: String,
    /// `data:` lines joined by newlines.
    pub data: String,
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: SecretString) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_string(), token }
    }

    fn transport(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport { url: self.base.clone(), cause: e.to_string() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.bearer_auth(self.token.expose_secret()).send().await.map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => ClientError::Api { status, code: b.error.code, message: b.error.message },
            Err(_) => ClientError::Api { status, code: "http".into(), message: format!("HTTP {status}") },
        })
    }

    /// `GET path` as JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.send(self.http.get(format!("{}{path}", self.base))).await?;
        r.json().await.map_err(|e| self.transport(e))
    }

    /// `GET path` as text.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let r = self.send(self.http.get(format!("{}{path}", self.base))).await?;
        r.text().await.map_err(|e| self.transport(e))
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ClientError> {
        let r = self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await?;
        r.json().await.map_err(|e| self.transport(e))
    }

    /// `PATCH path` with a JSON body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ClientError> {
        let r = self.send(self.http.patch(format!("{}{path}", self.base)).json(body)).await?;
        r.json().await.map_err(|e| self.transport(e))
    }

    /// `DELETE path`, expecting no body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await.map(drop)
    }

    /// `DELETE path` with a JSON answer.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.send(self.http.delete(format!("{}{path}", self.base))).await?;
        r.json().await.map_err(|e| self.transport(e))
    }

    /// Opens an SSE stream at `path`, resuming after `last_id`; events go to `tx` until the stream ends.
    ///
    /// # Errors
    /// [`ClientError`] opening the stream; a stream cut later just ends (callers resume).
    pub async fn sse(
        &self,
        path: &str,
        last_id: Option<&str>,
        tx: &tokio::sync::mpsc::Sender<SseEvent>,
    ) -> Result<(), ClientError> {
        let mut req = self.http.get(format!("{}{path}", self.base)).header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let resp = self.send(req).await?;
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(bytes)) = body.next().await {
            buf.extend_from_slice(&bytes);
            while let Some(end) = find_block_end(&buf) {
                let block: Vec<u8> = buf.drain(..end).collect();
                if let Some(ev) = parse_block(&String::from_utf8_lossy(&block))
                    && tx.send(ev).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The end (exclusive, including the blank line) of the first complete event block.
fn find_block_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2)
}

/// Parses one event block; comments-only blocks (keep-alives) are `None`.
pub fn parse_block(block: &str) -> Option<SseEvent> {
    let mut ev = SseEvent { event: "message".into(), ..SseEvent::default() };
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => ev.id = Some(value.to_string()),
            "event" => ev.event = value.to_string(),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && ev.id.is_none() {
        return None;
    }
    ev.data = data.join("\n");
    Some(ev)
}

/// Runs a client or admin subcommand. `cynode say` exits the process with its own exit code.
///
/// # Errors
/// Any failure, phrased for the user.
pub(super) async fn dispatch(command: crate::cli::Command, config: &crate::config::Config) -> anyhow::Result<()> {
    use crate::cli::Command;
    let is_root = cynode_orchestrator::store::embedded::effective_uid() == 0;
    let data_dir = |a: &ClientArgs| a.data_dir.clone().unwrap_or_else(|| config.data_dir(is_root));
    let api =
        |a: &ClientArgs| -> anyhow::Result<ApiClient> { Ok(ApiClient::new(&a.url, resolve_token(a, &data_dir(a))?)) };
    match command {
        Command::Say(args) => {
            let client = match api(&args.client) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::exit(i32::from(super::say::EXIT_USAGE));
                }
            };
            let code = super::say::run(args, client).await;
            let _ = std::io::Write::flush(&mut std::io::stdout());
            if code != 0 {
                std::process::exit(i32::from(code));
            }
            Ok(())
        }
        Command::Tasks(args) => super::tasks::run(&args, &api(&args.client)?).await,
        Command::Logs(args) => super::logs::run(&args, &api(&args.client)?).await,
        Command::Nodes(args) => super::nodes::run(&args, &api(&args)?).await,
        Command::Usage(args) => super::usage::run(&args, &api(&args.client)?).await,
        Command::Subs(cmd) => {
            let client = api(cmd.client())?;
            super::subs::run(cmd, &client).await
        }
        Command::Memory(cmd) => {
            let client = api(cmd.client())?;
            super::memory::run(cmd, &client).await
        }
        Command::Admin(cmd) => super::admin::run(cmd, config, &config.data_dir(is_root)).await,
        Command::Up(_) | Command::Serve(_) | Command::Migrate | Command::Keygen => {
            anyhow::bail!("not a client command")
        }
    }
}
