//! The fakes enforce the platforms' rules: each request below breaks one rule and must get that
//! platform's error, in its shape; raw `reqwest` calls, JSON and form-encoded.

mod discord;
mod slack;
mod telegram;

use serde_json::Value;

/// Sends `body` as JSON to `url` with optional extra headers; returns status, headers, JSON body.
async fn post_json(url: &str, auth: Option<&str>, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    read(request.send().await.unwrap()).await
}

/// Sends `fields` form-encoded.
async fn post_form(url: &str, auth: Option<&str>, fields: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut request =
        reqwest::Client::new().post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    read(request.send().await.unwrap()).await
}

async fn read(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}
