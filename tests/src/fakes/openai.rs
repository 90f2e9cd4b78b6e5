//! A strict fake of an OpenAI-compatible chat server (what llama.cpp's and vLLM's servers offer), scripted per
//! test.
//!
//! It enforces the chat-completions rules a real server enforces, answering 400 with OpenAI's error shape:
//! `model` and a non-empty `messages` array; known roles; an assistant message's `tool_calls` well formed; every
//! `tool` message answering an id of the assistant message before it that was not answered yet, and those
//! answers coming before any other message; `tools` as function schemas with valid names; `tool_choice` only
//! with tools, and naming a defined tool when it names one. Answers stream the way llama-cpp-python's server
//! streams them: `role: null`, the function name repeated in every tool-call delta, arguments split across
//! chunks, no `usage` unless asked for.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::server::Server;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Plain text.
    Text(String),
    /// Tool calls: (function name, arguments as JSON text).
    Calls(Vec<(String, String)>),
    /// An HTTP error status with a message (a server that fails).
    Fail(u16, String),
}

type Script = Box<dyn FnMut(&Value) -> Answer + Send>;

#[derive(Default)]
struct Inner {
    script: VecDeque<Script>,
    requests: Vec<Value>,
    rejected: Vec<String>,
    usage: bool,
    calls_made: u64,
    key: Option<String>,
    authorizations: Vec<Option<String>>,
}

/// The fake server.
pub struct FakeModel {
    server: Server,
    inner: Arc<Mutex<Inner>>,
}

/// The model id the fake serves.
pub const MODEL: &str = "fake-tool-model";

impl FakeModel {
    /// Starts the fake on `127.0.0.1:0` with an empty script (a request with nothing scripted is answered 500).
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .with_state(inner.clone());
        Self { server: Server::start(router).await, inner }
    }

    /// `http://127.0.0.1:PORT` (the `/v1/…` paths are appended by clients).
    pub fn url(&self) -> String {
        self.server.origin()
    }

    /// Answers the next request with `answer`.
    pub fn then(&self, answer: Answer) -> &Self {
        self.then_with(move |_| answer.clone())
    }

    /// Answers the next request with what `f` makes of it.
    pub fn then_with(&self, f: impl FnMut(&Value) -> Answer + Send + 'static) -> &Self {
        self.lock().script.push_back(Box::new(f));
        self
    }

    /// Reports `usage` in a last chunk, as servers that honour `stream_options.include_usage` do.
    pub fn with_usage(&self) -> &Self {
        self.lock().usage = true;
        self
    }

    /// Requires `Authorization: Bearer <key>` on every request, as a hosted provider does: others get OpenAI's
    /// 401 `invalid_api_key` error, which — like OpenAI's — repeats a masked form of the key it was given.
    pub fn require_key(&self, key: &str) -> &Self {
        self.lock().key = Some(key.to_string());
        self
    }

    /// The `Authorization` header of every request (models and chat), in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.lock().authorizations.clone()
    }

    /// Every chat request received, valid or not.
    pub fn requests(&self) -> Vec<Value> {
        self.lock().requests.clone()
    }

    /// Why requests were refused (empty when every request followed the rules).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn models(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let mut guard = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(refused) = authorize(&mut guard, &headers) {
        return refused;
    }
    Json(json!({ "object": "list", "data": [{ "id": MODEL, "object": "model", "owned_by": "fake" }] })).into_response()
}

/// Records the request's `Authorization` header and, when a key is required, refuses a missing or wrong one the
/// way OpenAI does (401, `invalid_api_key`, the presented key masked in the message): `Some(refusal)`.
fn authorize(inner: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    inner.authorizations.push(auth.clone());
    let key = inner.key.as_ref()?;
    let given = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        return None;
    }
    let message = match given {
        None => "You didn't provide an API key.".to_string(),
        Some(g) => {
            let head: String = g.chars().take(3).collect();
            let tail: String = g.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            format!("Incorrect API key provided: {head}****{tail}.")
        }
    };
    let body = json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": "invalid_api_key" } });
    Some((StatusCode::UNAUTHORIZED, Json(body)).into_response())
}

fn invalid(message: String) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": null } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn chat(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let parsed: Result<Value, _> = serde_json::from_str(&body);
    let mut guard = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(refused) = authorize(&mut guard, &headers) {
        return refused;
    }
    let Ok(req) = parsed else {
        guard.rejected.push("body is not JSON".into());
        return invalid("We could not parse the JSON body of your request.".into());
    };
    guard.requests.push(req.clone());
    if let Err(why) = check(&req) {
        guard.rejected.push(why.clone());
        return invalid(why);
    }
    let Some(mut next) = guard.script.pop_front() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": { "message": "nothing scripted" } })))
            .into_response();
    };
    let answer = next(&req);
    guard.calls_made += 1;
    let n = guard.calls_made;
    let usage = guard.usage;
    drop(guard);
    let stream = req["stream"].as_bool().unwrap_or(false);
    match answer {
        Answer::Fail(status, message) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Json(json!({ "error": { "message": message, "type": "server_error" } }))).into_response()
        }
        answer if stream => {
            let body = sse(&answer, n, usage);
            ([("content-type", "text/event-stream")], body).into_response()
        }
        answer => Json(whole(&answer, n)).into_response(),
    }
}

/// The rules; `Err` says which one the request broke.
fn check(req: &Value) -> Result<(), String> {
    if !req["model"].is_string() {
        return Err("you must provide a model parameter".into());
    }
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err("'messages' must be a non-empty array".into());
    };
    let tools: Vec<String> = match &req["tools"] {
        Value::Null => Vec::new(),
        Value::Array(tools) => tools
            .iter()
            .map(|t| {
                let name = t["function"]["name"].as_str().unwrap_or_default();
                let ok_name = !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if t["type"] != "function" || !ok_name || !t["function"]["parameters"].is_object() {
                    Err(format!("invalid tool schema: {t}"))
                } else {
                    Ok(name.to_owned())
                }
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("'tools' must be an array".into()),
    };
    match &req["tool_choice"] {
        Value::Null => {}
        _ if tools.is_empty() => return Err("'tool_choice' is only allowed when 'tools' are specified".into()),
        Value::String(s) if ["none", "auto", "required"].contains(&s.as_str()) => {}
        Value::Object(o) if o.get("type") == Some(&json!("function")) => {
            let name = o.get("function").and_then(|f| f["name"].as_str()).unwrap_or_default();
            if !tools.iter().any(|t| t == name) {
                return Err(format!("tool_choice names `{name}`, which is not in 'tools'"));
            }
        }
        other => return Err(format!("invalid 'tool_choice': {other}")),
    }
    if let Some(n) = req.get("max_tokens").filter(|v| !v.is_null())
        && n.as_u64().is_none_or(|n| n == 0)
    {
        return Err("'max_tokens' must be a positive integer".into());
    }
    let mut open: HashSet<String> = HashSet::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if !open.is_empty() && role != "tool" {
            return Err(format!(
                "messages[{i}]: an assistant message with 'tool_calls' must be followed by tool messages \
                 responding to each 'tool_call_id' (missing: {open:?})"
            ));
        }
        match role {
            "system" | "user" => {
                if !m["content"].is_string() {
                    return Err(format!("messages[{i}]: '{role}' content must be a string"));
                }
            }
            "assistant" => {
                let calls = m["tool_calls"].as_array().cloned().unwrap_or_default();
                // OpenAI allows `content: null` beside tool calls; llama-cpp-python's server refuses it (and fails
                // on a missing one), so the fake holds clients to the stricter rule.
                if !m["content"].is_string() {
                    return Err(format!("messages[{i}]: assistant content must be a string (\"\" beside tool_calls)"));
                }
                for c in &calls {
                    let id = c["id"].as_str().unwrap_or_default();
                    if id.is_empty()
                        || c["type"] != "function"
                        || !c["function"]["name"].is_string()
                        || !c["function"]["arguments"].is_string()
                    {
                        return Err(format!("messages[{i}]: malformed tool call {c}"));
                    }
                    open.insert(id.to_owned());
                }
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                if !open.remove(id) {
                    return Err(format!(
                        "messages[{i}]: messages with role 'tool' must be a response to a preceding message with \
                         'tool_calls' (no open call `{id}`)"
                    ));
                }
                if !m["content"].is_string() {
                    return Err(format!("messages[{i}]: tool content must be a string"));
                }
            }
            other => return Err(format!("messages[{i}]: invalid role `{other}`")),
        }
    }
    if !open.is_empty() {
        return Err(format!("the last assistant message's tool calls were not answered: {open:?}"));
    }
    Ok(())
}

fn chunk(n: u64, delta: &Value, finish: Option<&str>) -> String {
    let event = json!({
        "id": format!("chatcmpl-{n}"), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": MODEL,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {event}\n\n")
}

/// The answer as llama-cpp-python streams it.
fn sse(answer: &Answer, n: u64, usage: bool) -> String {
    let mut out = String::new();
    let finish = match answer {
        Answer::Text(text) => {
            out.push_str(&chunk(n, &json!({ "role": "assistant", "content": "" }), None));
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(6) {
                out.push_str(&chunk(n, &json!({ "role": null, "content": piece.iter().collect::<String>() }), None));
            }
            "stop"
        }
        Answer::Calls(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                let id = format!("call_{n}_{i}");
                let call = |arguments: &str| {
                    json!({ "role": null, "content": null, "tool_calls": [{ "index": i, "id": id, "type": "function",
                            "function": { "name": name, "arguments": arguments } }] })
                };
                out.push_str(&chunk(n, &call(""), None));
                let chars: Vec<char> = args.chars().collect();
                for piece in chars.chunks(5) {
                    out.push_str(&chunk(n, &call(&piece.iter().collect::<String>()), None));
                }
            }
            "tool_calls"
        }
        Answer::Fail(..) => "stop",
    };
    out.push_str(&chunk(n, &json!({}), Some(finish)));
    if usage {
        let event = json!({ "id": format!("chatcmpl-{n}"), "object": "chat.completion.chunk", "choices": [],
                            "usage": { "prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57 } });
        out.push_str(&format!("data: {event}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

fn whole(answer: &Answer, n: u64) -> Value {
    let message = match answer {
        Answer::Text(t) => json!({ "role": "assistant", "content": t }),
        Answer::Calls(calls) => {
            json!({ "role": "assistant", "content": null, "tool_calls": calls.iter().enumerate().map(|(i, (name, args))| {
            json!({ "id": format!("call_{n}_{i}"), "type": "function", "function": { "name": name, "arguments": args } })
        }).collect::<Vec<_>>() })
        }
        Answer::Fail(..) => json!({}),
    };
    json!({ "id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": MODEL,
            "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(messages: Value) -> Value {
        json!({ "model": "m", "messages": messages, "tools": [{ "type": "function", "function": { "name": "run_command", "parameters": {} } }] })
    }

    #[test]
    fn the_rules_of_tool_messages_are_enforced() {
        let call = json!({ "role": "assistant", "content": "",
            "tool_calls": [{ "id": "a", "type": "function", "function": { "name": "run_command", "arguments": "{}" } }] });
        let null_content = json!({ "role": "assistant", "content": null,
            "tool_calls": [{ "id": "a", "type": "function", "function": { "name": "run_command", "arguments": "{}" } }] });
        let user = json!({ "role": "user", "content": "hi" });
        let tool = |id: &str| json!({ "role": "tool", "tool_call_id": id, "content": "ok" });
        assert!(check(&req(json!([user, call, tool("a")]))).is_ok());
        assert!(check(&req(json!([user, null_content, tool("a")]))).is_err(), "null content, as llama-cpp-python");
        assert!(check(&req(json!([user, tool("a")]))).is_err(), "a tool message without a call");
        assert!(check(&req(json!([user, call, user, tool("a")]))).is_err(), "a message between call and result");
        assert!(check(&req(json!([user, call]))).is_err(), "an unanswered call");
        assert!(check(&req(json!([user, call, tool("b")]))).is_err(), "an answer to another id");
        let mut r = req(json!([user]));
        r["tool_choice"] = json!({ "type": "function", "function": { "name": "nope" } });
        assert!(check(&r).is_err(), "tool_choice naming no defined tool");
        let r = json!({ "model": "m", "messages": [user], "tool_choice": "auto" });
        assert!(check(&r).is_err(), "tool_choice without tools");
        assert!(check(&json!({ "model": "m", "messages": [] })).is_err());
    }

    #[test]
    fn streamed_calls_repeat_the_name_and_split_the_arguments() {
        let body = sse(&Answer::Calls(vec![("run_command".into(), r#"{"command": "ls -la"}"#.into())]), 1, false);
        let deltas: Vec<Value> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        let with_calls: Vec<&Value> =
            deltas.iter().filter(|d| d["choices"][0]["delta"]["tool_calls"].is_array()).collect();
        assert!(with_calls.len() > 3);
        assert!(
            with_calls.iter().all(|d| d["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "run_command")
        );
        assert!(with_calls.iter().all(|d| d["choices"][0]["delta"]["role"].is_null()));
        let joined: String = with_calls
            .iter()
            .filter_map(|d| d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(joined, r#"{"command": "ls -la"}"#);
    }
}
