//! Request parameters from JSON or form-encoded bodies (and the query string), as official
//! clients send both; with typed accessors that tell "absent" from "wrong type".

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

/// Why parameters could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The body claims JSON but is not a JSON object.
    Json,
    /// The body is not valid form encoding (or not UTF-8).
    Form,
    /// A content type the fake does not accept (e.g. multipart).
    ContentType,
}

/// The parameters of one request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(pub(crate) Map<String, Value>);

impl Params {
    /// Reads the query string, then the body by its content type (a body without one is sniffed:
    /// `{` means JSON). Form fields become strings.
    pub(crate) fn read(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Result<Self, BodyError> {
        let mut map = Map::new();
        if let Some(query) = query {
            form_into(query.as_bytes(), &mut map)?;
        }
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(map));
        }
        match media.as_str() {
            "application/json" => json_into(body, &mut map)?,
            "application/x-www-form-urlencoded" => form_into(body, &mut map)?,
            "" if looks_json => json_into(body, &mut map)?,
            "" => form_into(body, &mut map)?,
            _ => return Err(BodyError::ContentType),
        }
        Ok(Self(map))
    }

    /// The parameters as a JSON object, with `token` removed, for the call log.
    pub(crate) fn logged(&self) -> Value {
        let mut map = self.0.clone();
        map.remove("token");
        Value::Object(map)
    }

    /// Whether `key` is present and not null.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    /// A string parameter: `Ok(None)` when absent or null, `Err` when of another type.
    pub(crate) fn str(&self, key: &str) -> Result<Option<&str>, ()> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(()),
        }
    }

    /// An integer parameter; numeric strings count (form bodies have no numbers).
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, ()> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }

    /// A boolean parameter; `true`/`false`/`1`/`0` strings count.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ()> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(()),
            },
            Some(_) => Err(()),
        }
    }

    /// A structured parameter (object or array), given as JSON or, in form bodies, as a JSON
    /// string.
    pub(crate) fn structured(&self, key: &str) -> Result<Option<Value>, ()> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(Some(v.clone())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ (Value::Object(_) | Value::Array(_))) => Ok(Some(v)),
                _ => Err(()),
            },
            Some(_) => Err(()),
        }
    }
}

fn json_into(body: &[u8], map: &mut Map<String, Value>) -> Result<(), BodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            map.extend(object);
            Ok(())
        }
        _ => Err(BodyError::Json),
    }
}

fn form_into(body: &[u8], map: &mut Map<String, Value>) -> Result<(), BodyError> {
    std::str::from_utf8(body).map_err(|_| BodyError::Form)?;
    for (key, value) in url::form_urlencoded::parse(body) {
        map.insert(key.into_owned(), Value::String(value.into_owned()));
    }
    Ok(())
}

/// Unicode scalar values, as Slack and Discord count text.
pub(crate) fn chars(text: &str) -> usize {
    text.chars().count()
}

/// UTF-16 code units, as Telegram counts text.
pub(crate) fn utf16(text: &str) -> usize {
    text.encode_utf16().count()
}
