//! Strict `application/x-www-form-urlencoded` decoding.
//!
//! Stricter than the WHATWG algorithm on purpose: the body must be UTF-8, every `%` must start a
//! valid escape, decoded text must be UTF-8, and a field may appear only once (so the install
//! hint read before verification and the parse after it cannot disagree about a repeated
//! `team_id`).

use crate::ParseError;

/// The most fields a form body may have; Slack sends about fifteen.
const MAX_FIELDS: usize = 256;

/// A decoded form body.
#[derive(Debug, Default)]
pub(crate) struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Decodes `body`.
    ///
    /// # Errors
    ///
    /// [`ParseError::NotUtf8`] or [`ParseError::Form`].
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let body = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
        let mut fields: Vec<(String, String)> = Vec::new();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            if fields.len() == MAX_FIELDS {
                return Err(ParseError::Form("too many fields"));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name)?;
            if name.is_empty() {
                return Err(ParseError::Form("empty field name"));
            }
            if fields.iter().any(|(n, _)| *n == name) {
                return Err(ParseError::Form("repeated field"));
            }
            fields.push((name, decode(value)?));
        }
        Ok(Self { fields })
    }

    /// The value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name`, which must be present (it may be empty).
    ///
    /// # Errors
    ///
    /// [`ParseError::MissingField`].
    pub(crate) fn required(&self, name: &'static str) -> Result<&str, ParseError> {
        self.get(name).ok_or(ParseError::MissingField(name))
    }

    /// The value of `name`, which must be present and not empty.
    ///
    /// # Errors
    ///
    /// [`ParseError::MissingField`] or [`ParseError::InvalidField`] when empty.
    pub(crate) fn non_empty(&self, name: &'static str) -> Result<&str, ParseError> {
        let value = self.required(name)?;
        if value.is_empty() {
            return Err(ParseError::InvalidField(name));
        }
        Ok(value)
    }
}

fn decode(raw: &str) -> Result<String, ParseError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(ParseError::Form("invalid percent escape"));
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParseError::Form("escaped text is not UTF-8"))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_slack_style_bodies() {
        let form = Form::parse(b"a=1&text=run+echo%20hi&url=https%3A%2F%2Fx&empty=&flag").unwrap();
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("text"), Some("run echo hi"));
        assert_eq!(form.get("url"), Some("https://x"));
        assert_eq!(form.required("empty"), Ok(""));
        assert_eq!(form.non_empty("empty"), Err(ParseError::InvalidField("empty")));
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(form.required("nope"), Err(ParseError::MissingField("nope")));
        assert_eq!(Form::parse(b"").unwrap().get("a"), None);
        assert_eq!(Form::parse(b"&&a=%C3%A9&&").unwrap().get("a"), Some("é"));
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: [&[u8]; 8] = [b"a=%", b"a=%4", b"a=%zz", b"a=%FF", b"a=1&a=2", b"=x", b"a=\xff", b"%61=1&a=2"];
        for body in cases {
            assert!(Form::parse(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
        let many = (0..300).map(|i| format!("f{i}=1")).collect::<Vec<_>>().join("&");
        assert_eq!(Form::parse(many.as_bytes()).unwrap_err(), ParseError::Form("too many fields"));
    }
}
