//! Unique, signed Slack `app_mention` events, prepared before a step so signing costs nothing while it runs.

use bytes::Bytes;

/// Who the events claim to come from, and how they are signed.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    pub(crate) secret: String,
    pub(crate) team: String,
    pub(crate) app: String,
    pub(crate) text: String,
    /// Distinct users and channels the events cycle through.
    pub(crate) users: usize,
    pub(crate) channels: usize,
}

/// One ready-to-send request.
pub(crate) struct Prepared {
    pub(crate) body: Bytes,
    pub(crate) timestamp: String,
    pub(crate) signature: String,
}

impl Signer {
    /// `count` events with ids unique to `prefix`, signed at `now_unix`.
    pub(crate) fn prepare(&self, prefix: &str, count: usize, now_unix: i64) -> anyhow::Result<Vec<Prepared>> {
        (0..count)
            .map(|i| {
                let ts = format!("1700000000.{i:06}");
                let body = serde_json::json!({
                    "token": "bench", "team_id": self.team, "api_app_id": self.app, "type": "event_callback",
                    "event_id": format!("Ev{prefix}{i:07}"), "event_time": now_unix,
                    "authorizations": [{ "team_id": self.team, "user_id": "UBENCHBOT", "is_bot": true }],
                    "event": {
                        "type": "app_mention", "user": format!("U{:05}", i % self.users.max(1)),
                        "text": format!("<@UBENCHBOT> {}", self.text), "ts": ts, "event_ts": ts,
                        "channel": format!("C{:04}", i % self.channels.max(1))
                    }
                })
                .to_string();
                let signature = cynode_adapters::slack::sign(self.secret.as_bytes(), now_unix, body.as_bytes())
                    .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
                Ok(Prepared { body: Bytes::from(body), timestamp: now_unix.to_string(), signature })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_unique_and_verify() {
        let signer = Signer {
            secret: "8f742231b10e8888abcd99yyyzzz85a5".into(),
            team: "T1".into(),
            app: "A1".into(),
            text: "help".into(),
            users: 3,
            channels: 2,
        };
        let events = signer.prepare("x", 5, 1_700_000_000).expect("prepare");
        let ids: std::collections::HashSet<String> = events
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&e.body).expect("json");
                v["event_id"].as_str().expect("id").to_string()
            })
            .collect();
        assert_eq!(ids.len(), 5);
        let mut headers = http_headers(&events[0]);
        assert!(
            cynode_adapters::slack::verify(&headers, &events[0].body, signer.secret.as_bytes(), 1_700_000_000).is_ok()
        );
        headers.insert("x-slack-signature", "v0=00".parse().expect("value"));
        assert!(cynode_adapters::slack::verify(&headers, &events[0].body, b"x", 1_700_000_000).is_err());
    }

    fn http_headers(e: &Prepared) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-slack-request-timestamp", e.timestamp.parse().expect("ts"));
        h.insert("x-slack-signature", e.signature.parse().expect("sig"));
        h
    }
}
