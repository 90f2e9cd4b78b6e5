//! Routing, token check, rate limits and the call log of the fake Telegram.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{Shared, methods};
use crate::fakes::Call;
use crate::fakes::params::Params;
use crate::fakes::rate::ceil_secs;

/// A refused request: `error_code`, `description`, and `parameters.retry_after` for 429s.
pub(super) struct Refusal {
    pub(super) code: u16,
    pub(super) description: String,
    pub(super) retry_after: Option<u64>,
}

/// A 400 `Bad Request: …`.
pub(super) fn bad(what: &str) -> Refusal {
    Refusal { code: 400, description: format!("Bad Request: {what}"), retry_after: None }
}

/// A method's answer: the `result`, or a refusal.
pub(super) type Res = Result<Value, Refusal>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/{bot}/{method}", get(handle).post(handle)).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let params = Params::read(&headers, uri.query(), &body);
    let logged = params.as_ref().map(Params::logged).unwrap_or(Value::Null);
    let result = if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        Err(Refusal { code: 401, description: "Unauthorized".into(), retry_after: None })
    } else {
        match params {
            Ok(p) => dispatch(&shared, &method, &p, now),
            Err(_) => Err(bad("can't parse request body")),
        }
    };
    let (status, body, error) = match result {
        Ok(value) => (200, json!({"ok": true, "result": value}), None),
        Err(r) => {
            let mut body = json!({"ok": false, "error_code": r.code, "description": r.description});
            if let Some(secs) = r.retry_after {
                body["parameters"] = json!({"retry_after": secs});
            }
            (r.code, body, Some(r.description))
        }
    };
    let call = Call {
        method: method.clone(),
        params: logged,
        at: now.saturating_duration_since(shared.started),
        status,
        error,
        response: body.clone(),
    };
    shared.lock().calls.push(call);
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
}

fn dispatch(shared: &Shared, method: &str, p: &Params, now: Instant) -> Res {
    let method = method.to_ascii_lowercase();
    let at = now.saturating_duration_since(shared.started);
    match method.as_str() {
        "sendmessage" | "editmessagetext" => {
            let chat = methods::chat_id(p)?;
            limit(shared, chat, false, now)?;
            let mut state = shared.lock();
            if method == "sendmessage" {
                methods::send_message(&mut state, p, chat, at)
            } else {
                methods::edit_message_text(&mut state, p, chat, at)
            }
        }
        "sendmessagedraft" if !shared.drafts => {
            Err(Refusal { code: 404, description: "Not Found".into(), retry_after: None })
        }
        "sendmessagedraft" => {
            let chat = methods::chat_id(p)?;
            limit(shared, chat, true, now)?;
            methods::send_message_draft(&mut shared.lock(), p, chat)
        }
        "answercallbackquery" => methods::answer_callback_query(&mut shared.lock(), p),
        "getme" => Ok(json!({"id": 123_456_789, "is_bot": true, "first_name": "CyNode", "username": "cynode_bot"})),
        _ => Err(Refusal { code: 404, description: "Not Found".into(), retry_after: None }),
    }
}

/// Takes a token from each bucket that applies: drafts per chat, or messages per chat, per group
/// (negative chat ids) and overall.
fn limit(shared: &Shared, chat: i64, draft: bool, now: Instant) -> Result<(), Refusal> {
    let rates = shared.rates;
    let mut state = shared.lock();
    let checks: Vec<(&'static str, i64, _)> = if draft {
        vec![("draft", chat, rates.drafts)]
    } else {
        let mut c = vec![("global", 0, rates.global), ("chat", chat, rates.per_chat)];
        if chat < 0 {
            c.push(("group", chat, rates.per_group));
        }
        c
    };
    for (kind, key, rate) in checks {
        if let Err(wait) = state.buckets.take((kind, key), rate, now) {
            let secs = ceil_secs(wait);
            let description = format!("Too Many Requests: retry after {secs}");
            return Err(Refusal { code: 429, description, retry_after: Some(secs) });
        }
    }
    Ok(())
}
