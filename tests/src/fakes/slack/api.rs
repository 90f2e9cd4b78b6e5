//! Routing, authentication, rate limits and the call log of the fake Slack.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Shared, methods, response_url};
use crate::fakes::Call;
use crate::fakes::params::{BodyError, Params};
use crate::fakes::rate::{Rate, ceil_secs};

/// What a method answers.
pub(super) struct Outcome {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) retry_after: Option<u64>,
}

impl Outcome {
    /// `{"ok":true, …}`.
    pub(super) fn ok(mut body: Value) -> Self {
        body["ok"] = json!(true);
        Self { status: 200, body, retry_after: None }
    }

    /// `{"ok":false,"error":code}` with HTTP 200, as Slack answers method errors.
    pub(super) fn err(code: &str) -> Self {
        Self { status: 200, body: json!({"ok": false, "error": code}), retry_after: None }
    }

    /// An error with `response_metadata.messages`, as for `invalid_blocks` and `invalid_arguments`.
    pub(super) fn err_with(code: &str, messages: Vec<String>) -> Self {
        let body = json!({"ok": false, "error": code, "response_metadata": {"messages": messages}});
        Self { status: 200, body, retry_after: None }
    }

    /// HTTP 429 with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
    pub(super) fn rate_limited(wait: std::time::Duration) -> Self {
        let body = json!({"ok": false, "error": "ratelimited"});
        Self { status: 429, body, retry_after: Some(ceil_secs(wait)) }
    }

    fn error(&self) -> Option<String> {
        self.body["error"].as_str().map(str::to_owned)
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/{method}", post(api).get(api))
        .route("/response/{team}/{seq}/{secret}", post(response_url))
        .with_state(shared)
}

async fn api(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(method): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    // Slack's read methods take their arguments from the query string or a form body, never from JSON.
    let json_body = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let params = if method == "conversations.replies" && json_body {
        Params::read(&HeaderMap::new(), uri.query(), b"")
    } else {
        Params::read(&headers, uri.query(), &body)
    };
    let logged = params.as_ref().map(Params::logged).unwrap_or(Value::Null);
    let late = {
        let mut state = shared.lock();
        let outcome = match params {
            Ok(params) => dispatch(&shared, &mut state, &method, &headers, &params, now),
            Err(BodyError::Json) => Outcome::err("invalid_json"),
            Err(BodyError::Form) => Outcome::err("invalid_form_data"),
            Err(BodyError::ContentType) => Outcome::err("invalid_post_type"),
        };
        record(&shared, &mut state.calls, &method, logged, &outcome, now);
        let late = (method == "chat.postMessage" && outcome.body["ok"] == json!(true))
            .then_some(shared.late_posts)
            .flatten()
            .map(|delay| {
                let ts = outcome.body["ts"].as_str().unwrap_or_default().to_owned();
                let m = state.messages.iter().find(|m| m.ts == ts);
                let flight = super::InFlight {
                    channel: m.map(|m| m.channel.clone()).unwrap_or_default(),
                    thread_ts: m.and_then(|m| m.thread_ts.clone()),
                    ts,
                    peer,
                };
                state.in_flight.push(flight.clone());
                (delay, flight)
            });
        match late {
            None => return outcome.into_response(),
            Some((delay, flight)) => (delay, flight, outcome),
        }
    };
    let (delay, flight, outcome) = late;
    // Listed while the answer is held back, and no longer once it is sent or the client is gone.
    let _landed = Landed { shared: shared.clone(), ts: flight.ts };
    tokio::time::sleep(delay).await;
    outcome.into_response()
}

/// Removes a held-back post from the in-flight list when dropped.
struct Landed {
    shared: Arc<Shared>,
    ts: String,
}

impl Drop for Landed {
    fn drop(&mut self) {
        self.shared.lock().in_flight.retain(|f| f.ts != self.ts);
    }
}

fn record(shared: &Shared, calls: &mut Vec<Call>, method: &str, params: Value, outcome: &Outcome, now: Instant) {
    calls.push(Call {
        method: method.to_owned(),
        params,
        at: now.saturating_duration_since(shared.started),
        status: outcome.status,
        error: outcome.error(),
        response: outcome.body.clone(),
    });
}

fn dispatch(
    shared: &Shared,
    state: &mut super::State,
    method: &str,
    headers: &HeaderMap,
    params: &Params,
    now: Instant,
) -> Outcome {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| params.str("token").ok().flatten());
    match bearer {
        None => return Outcome::err("not_authed"),
        Some(token) if token != shared.token => return Outcome::err("invalid_auth"),
        Some(_) => {}
    }
    let rates = &shared.rates;
    let (key, rate): (&'static str, Rate) = match method {
        "chat.postMessage" => ("chat.postMessage", rates.post_message),
        "chat.update" => ("chat.update", rates.update),
        "chat.postEphemeral" => ("chat.postEphemeral", rates.post_ephemeral),
        "chat.startStream" => ("chat.startStream", rates.start_stop_stream),
        "chat.stopStream" => ("chat.stopStream", rates.start_stop_stream),
        "chat.appendStream" => ("chat.appendStream", rates.append_stream),
        "assistant.threads.setStatus" => ("assistant.threads.setStatus", rates.set_status),
        "conversations.replies" => ("conversations.replies", rates.replies),
        _ => return Outcome::err("unknown_method"),
    };
    let scope = if method == "chat.postMessage" {
        params.str("channel").ok().flatten().unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    if let Err(wait) = state.buckets.take((key, scope), rate, now) {
        return Outcome::rate_limited(wait);
    }
    if shared.unavailable.iter().any(|m| m == method) {
        return Outcome { status: 503, ..Outcome::err("service_unavailable") };
    }
    if let (Some(code), "chat.startStream") = (&shared.refuse_streams, method) {
        return Outcome::err(code);
    }
    let at = now.saturating_duration_since(shared.started);
    let result = match method {
        "chat.postMessage" => methods::post_message(state, params, at),
        "chat.update" => methods::update(state, params, at),
        "chat.postEphemeral" => methods::post_ephemeral(state, params, at),
        "chat.startStream" => methods::start_stream(state, params, at),
        "chat.appendStream" => methods::append_stream(state, params, at),
        "chat.stopStream" => methods::stop_stream(state, params, at),
        "conversations.replies" => methods::replies(state, params),
        _ => methods::set_status(state, params),
    };
    result.unwrap_or_else(|e| e)
}

async fn response_url(
    State(shared): State<Arc<Shared>>,
    Path((team, seq, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let id = format!("{team}/{seq}/{secret}");
    let params = Params::read(&headers, None, &body);
    let logged = params.as_ref().map(Params::logged).unwrap_or(Value::Null);
    let mut state = shared.lock();
    let at = now.saturating_duration_since(shared.started);
    let outcome = match params {
        Ok(params) => response_url::respond(&mut state, &id, &params, now, at),
        Err(_) => Outcome { status: 400, body: json!({"ok": false, "error": "invalid_payload"}), retry_after: None },
    };
    record(&shared, &mut state.calls, "response_url", logged, &outcome, now);
    outcome.into_response()
}
