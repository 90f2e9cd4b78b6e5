//! Routes, auth, rate-limit headers and message state of the fake Discord.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{patch, post};
use serde_json::{Value, json};

use super::answer::{Answer, limit};
use super::validate::{self, Failure};
use super::{Message, Shared};
use crate::fakes::Call;
use crate::fakes::params::Params;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v10/channels/{channel}/messages", post(create))
        .route("/api/v10/channels/{channel}/messages/{message}", patch(edit))
        .route("/api/v10/webhooks/{app}/{token}", post(execute))
        .route("/api/v10/webhooks/{app}/{token}/messages/{message}", patch(edit_webhook))
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"message": "404: Not Found", "code": 0}))) })
        .with_state(shared)
}

/// What a handler needs: the parsed body (or its failure) and the time.
struct Req {
    params: Result<Params, Failure>,
    logged: Value,
    now: Instant,
}

impl Req {
    fn new(headers: &HeaderMap, uri: &Uri, body: &Bytes) -> Self {
        let params = Params::read(headers, uri.query(), body)
            .map_err(|_| (400, json!({"message": "400: Bad Request", "code": 0})));
        let logged = params.as_ref().map(Params::logged).unwrap_or(Value::Null);
        Self { params, logged, now: Instant::now() }
    }
}

fn finish(shared: &Shared, route: &str, req: Req, answer: Answer) -> Response {
    let error =
        answer.body["code"].as_u64().map(|c| c.to_string()).or_else(|| (answer.status == 429).then(|| "429".into()));
    let call = Call {
        method: route.to_owned(),
        params: req.logged,
        at: req.now.saturating_duration_since(shared.started),
        status: answer.status,
        error: if answer.status < 300 { None } else { error },
        response: answer.body.clone(),
    };
    shared.lock().calls.push(call);
    answer.into_response()
}

fn bot_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if given == Some(&format!("Bot {}", shared.bot_token)) {
        Ok(())
    } else {
        Err((401, json!({"message": "401: Unauthorized", "code": 0})))
    }
}

fn snowflake(id: &str) -> Result<(), Failure> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err((404, json!({"message": "Unknown Channel", "code": 10_003})))
    }
}

fn message_json(shared: &Shared, m: &Message) -> Value {
    json!({"id": m.id, "channel_id": m.channel_id, "content": m.content, "components": m.components,
           "flags": m.flags, "type": if m.via_interaction { 20 } else { 0 }, "tts": false, "pinned": false,
           "mention_everyone": false, "mentions": [], "embeds": [], "attachments": [],
           "author": {"id": shared.application_id, "username": "CyNode", "bot": true},
           "webhook_id": if m.via_interaction { Some(&shared.application_id) } else { None },
           "edited_timestamp": if m.edits > 0 { Some("2026-01-01T00:00:00.000000+00:00") } else { None }})
}

/// Runs `body` after auth and rate limits, merging the bucket into its answer.
fn respond(mut limited: Answer, body: impl FnOnce() -> Result<(u16, Value), Failure>) -> Answer {
    if limited.status == 429 {
        return limited;
    }
    let (status, value) = body().unwrap_or_else(|f| f);
    limited.status = status;
    limited.body = value;
    limited
}

async fn create(
    State(s): State<Arc<Shared>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let req = Req::new(&headers, &uri, &body);
    let answer = match bot_auth(&s, &headers).and_then(|()| snowflake(&channel)) {
        Err(f) => Answer::fail(f),
        Ok(()) => respond(limit(&s, "create_message", channel.clone(), s.rates.create_message, true, req.now), || {
            let p = req.params.as_ref().map_err(Clone::clone)?;
            let f = validate::fields(p, false)?;
            if f.content.as_deref().is_none_or(|c| c.trim().is_empty())
                && !f.embeds
                && f.components.as_ref().is_none_or(|c| c.as_array().is_some_and(Vec::is_empty))
            {
                return Err(validate::empty());
            }
            let mut state = s.lock();
            let m = Message {
                id: state.next_id(),
                channel_id: channel.clone(),
                content: f.content.unwrap_or_default(),
                components: f.components.unwrap_or_else(|| json!([])),
                flags: f.flags.unwrap_or(0),
                via_interaction: false,
                deferred: false,
                ephemeral: false,
                edits: 0,
                updated_at: req.now.saturating_duration_since(s.started),
            };
            let body = message_json(&s, &m);
            state.messages.push(m);
            Ok((200, body))
        }),
    };
    finish(&s, "create_message", req, answer)
}

/// Applies an edit to message `id`, if `allowed` says it may be edited.
fn apply_edit(
    s: &Shared,
    p: &Params,
    id: &str,
    allowed: impl Fn(&Message) -> bool,
    at: Duration,
) -> Result<(u16, Value), Failure> {
    let f = validate::fields(p, false)?;
    let mut state = s.lock();
    let unknown = || (404, json!({"message": "Unknown Message", "code": 10_008}));
    let m =
        state.messages.iter_mut().find(|m| m.id == id && !m.ephemeral).filter(|m| allowed(m)).ok_or_else(unknown)?;
    let content = f.content.unwrap_or_else(|| m.content.clone());
    let components = f.components.unwrap_or_else(|| m.components.clone());
    if content.trim().is_empty() && !f.embeds && components.as_array().is_none_or(Vec::is_empty) {
        return Err(validate::empty());
    }
    m.content = content;
    m.components = components;
    m.deferred = false;
    m.edits += 1;
    m.updated_at = at;
    Ok((200, message_json(s, m)))
}

async fn edit(
    State(s): State<Arc<Shared>>,
    Path((channel, message)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let req = Req::new(&headers, &uri, &body);
    let at = req.now.saturating_duration_since(s.started);
    let answer = match bot_auth(&s, &headers).and_then(|()| snowflake(&channel)) {
        Err(f) => Answer::fail(f),
        Ok(()) => respond(limit(&s, "edit_message", channel.clone(), s.rates.edit_message, true, req.now), || {
            let p = req.params.as_ref().map_err(Clone::clone)?;
            apply_edit(&s, p, &message, |m| m.channel_id == channel, at)
        }),
    };
    finish(&s, "edit_message", req, answer)
}

/// Checks the application id and the interaction token (known, not expired).
fn interaction(s: &Shared, app: &str, token: &str, now: Instant) -> Result<super::Interaction, Failure> {
    if app != s.application_id {
        return Err((404, json!({"message": "Unknown Webhook", "code": 10_015})));
    }
    let state = s.lock();
    match state.interactions.get(token) {
        Some(i) if now.saturating_duration_since(i.created) < s.interaction_lifetime => Ok(i.clone()),
        _ => Err((401, json!({"message": "Invalid Webhook Token", "code": 50_027}))),
    }
}

async fn execute(
    State(s): State<Arc<Shared>>,
    Path((app, token)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let req = Req::new(&headers, &uri, &body);
    let at = req.now.saturating_duration_since(s.started);
    let wait = uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "wait=true"));
    let answer = match interaction(&s, &app, &token, req.now) {
        Err(f) => Answer::fail(f),
        Ok(i) => respond(limit(&s, "execute_webhook", token.clone(), s.rates.webhook, false, req.now), || {
            let p = req.params.as_ref().map_err(Clone::clone)?;
            let f = validate::fields(p, true)?;
            if f.content.as_deref().is_none_or(|c| c.trim().is_empty())
                && !f.embeds
                && f.components.as_ref().is_none_or(|c| c.as_array().is_some_and(Vec::is_empty))
            {
                return Err(validate::empty());
            }
            let flags = f.flags.unwrap_or(0);
            let mut state = s.lock();
            let id = state.next_id();
            let m = Message {
                id: id.clone(),
                channel_id: i.channel_id.clone(),
                content: f.content.unwrap_or_default(),
                components: f.components.unwrap_or_else(|| json!([])),
                flags,
                via_interaction: true,
                deferred: false,
                ephemeral: flags & (1 << 6) != 0,
                edits: 0,
                updated_at: at,
            };
            let body = message_json(&s, &m);
            state.messages.push(m);
            if let Some(i) = state.interactions.get_mut(&token) {
                i.messages.push(id);
            }
            Ok(if wait { (200, body) } else { (204, Value::Null) })
        }),
    };
    finish(&s, "execute_webhook", req, answer)
}

async fn edit_webhook(
    State(s): State<Arc<Shared>>,
    Path((app, token, message)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let req = Req::new(&headers, &uri, &body);
    let at = req.now.saturating_duration_since(s.started);
    let answer = match interaction(&s, &app, &token, req.now) {
        Err(f) => Answer::fail(f),
        Ok(i) => respond(limit(&s, "execute_webhook", token.clone(), s.rates.webhook, false, req.now), || {
            let p = req.params.as_ref().map_err(Clone::clone)?;
            let id = if message == "@original" { i.messages[0].clone() } else { message.clone() };
            apply_edit(&s, p, &id, |m| i.messages.contains(&m.id), at)
        }),
    };
    finish(&s, "edit_webhook_message", req, answer)
}
