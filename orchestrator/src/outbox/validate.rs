//! Validation of subscription input: receiver URLs (and the hosts they must not point at), event names,
//! filters. Every error message says what to change.

use std::net::IpAddr;

use url::{Host, Url};

use super::{EventType, OutboxError};

/// Longest accepted URL.
const MAX_URL_LEN: usize = 2048;
/// Most fields in a filter.
const MAX_FILTER_FIELDS: usize = 16;

fn invalid(msg: impl Into<String>) -> OutboxError {
    OutboxError::Invalid(msg.into())
}

/// Checks a receiver URL: http(s), a host, no credentials, and not one of `deny_hosts`.
///
/// A `deny_hosts` entry is `host` (any port) or `host:port` (`[v6]:port` for IPv6), compared case-insensitively
/// with the URL's host and effective port. `localhost`, `127.0.0.0/8` and `::1` count as one host, and an
/// unspecified address (`0.0.0.0`, `::`, what a server listening on every interface reports) also matches
/// them. Names are not resolved: a DNS name that points at CyNode is not caught here.
pub(super) fn url(raw: &str, deny_hosts: &[String]) -> Result<Url, OutboxError> {
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(format!("the URL is longer than {MAX_URL_LEN} characters")));
    }
    let url = Url::parse(raw.trim()).map_err(|e| invalid(format!("`{raw}` is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("the URL must start with http:// or https://, not {}://", url.scheme())));
    }
    let Some(host) = url.host() else {
        return Err(invalid("the URL has no host"));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "the URL must not contain credentials: receivers authenticate CyNode by the webhook signature",
        ));
    }
    let port = url.port_or_known_default();
    for entry in deny_hosts {
        if let Some((deny_host, deny_port)) = parse_entry(entry)
            && same_host(&host, &deny_host)
            && deny_port.is_none_or(|p| Some(p) == port)
        {
            return Err(invalid(format!(
                "the URL points at CyNode itself ({entry}); a subscription must deliver to another service"
            )));
        }
    }
    Ok(url)
}

fn parse_entry(entry: &str) -> Option<(Host<String>, Option<u16>)> {
    let entry = entry.trim();
    if entry.contains("://") {
        let u = Url::parse(entry).ok()?;
        return Some((u.host()?.to_owned(), u.port_or_known_default()));
    }
    // `host:port`, `[v6]:port`, a bare v6 address, or a bare host.
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some((ip_host(ip), None));
    }
    let u = Url::parse(&format!("http://{entry}")).ok()?;
    Some((u.host()?.to_owned(), u.port()))
}

fn ip_host(ip: IpAddr) -> Host<String> {
    match ip {
        IpAddr::V4(v4) => Host::Ipv4(v4),
        IpAddr::V6(v6) => Host::Ipv6(v6),
    }
}

fn is_local(host: &Host<impl AsRef<str>>) -> bool {
    match host {
        Host::Domain(d) => d.as_ref().eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback() || ip.is_unspecified(),
        Host::Ipv6(ip) => ip.is_loopback() || ip.is_unspecified(),
    }
}

fn same_host(a: &Host<&str>, b: &Host<String>) -> bool {
    if is_local(a) && is_local(b) {
        return true;
    }
    match (a, b) {
        (Host::Domain(x), Host::Domain(y)) => x.trim_end_matches('.').eq_ignore_ascii_case(y.trim_end_matches('.')),
        (Host::Ipv4(x), Host::Ipv4(y)) => x == y,
        (Host::Ipv6(x), Host::Ipv6(y)) => x == y,
        _ => false,
    }
}

/// Parses event names; `ping` and unknown names are refused. Duplicates are removed, order kept.
pub(super) fn events(names: &[String]) -> Result<Vec<String>, OutboxError> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let event: EventType = name.trim().parse().map_err(|_| {
            let known: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|e| e.as_str()).collect();
            invalid(format!("unknown event type `{name}`; known: {}", known.join(", ")))
        })?;
        if event == EventType::Ping {
            return Err(invalid("`ping` cannot be subscribed to: it is sent only as a test message"));
        }
        if !out.iter().any(|e| e == event.as_str()) {
            out.push(event.as_str().to_string());
        }
    }
    Ok(out)
}

/// A filter is a JSON object of top-level payload fields to scalar values (string, number, boolean); a
/// delivery is created only when the payload has every field with exactly that value. `null` or `{}` means
/// no filter.
pub(super) fn filter(value: &serde_json::Value) -> Result<serde_json::Value, OutboxError> {
    let obj = match value {
        serde_json::Value::Null => return Ok(serde_json::json!({})),
        serde_json::Value::Object(o) => o,
        _ => {
            return Err(invalid("the filter must be a JSON object such as {\"install_id\": \"…\"}"));
        }
    };
    if obj.len() > MAX_FILTER_FIELDS {
        return Err(invalid(format!("a filter has at most {MAX_FILTER_FIELDS} fields")));
    }
    for (k, v) in obj {
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            return Err(invalid(format!(
                "filter field `{k}` must be a string, number or boolean (equality on a top-level payload field)"
            )));
        }
    }
    Ok(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny() -> Vec<String> {
        vec!["0.0.0.0:8080".into(), "https://cynode.example.com".into(), "[::1]:9000".into()]
    }

    #[test]
    fn urls_are_checked() {
        let d = deny();
        assert!(url("https://hooks.example.org/x", &d).is_ok());
        assert!(url("http://127.0.0.1:9999/x", &d).is_ok(), "another port is another service");
        for bad in [
            "ftp://a.example/x",
            "not a url",
            "http://localhost:8080/hook",
            "http://127.0.0.2:8080/",
            "https://CYNODE.example.com./hooks",
            "http://[::1]:9000/",
            "https://user:pw@hooks.example.org/",
            "file:///etc/passwd",
        ] {
            assert!(url(bad, &d).is_err(), "{bad} accepted");
        }
        let msg = url("http://localhost:8080/", &d).expect_err("denied").to_string();
        assert!(msg.contains("CyNode itself"), "{msg}");
        assert!(url("http://cynode.example.com/", &d).is_ok(), "port 80 is not the public https port");
        assert!(url("http://cynode.example.com/", &["cynode.example.com".into()]).is_err(), "bare host: any port");
    }

    #[test]
    fn events_and_filters() {
        assert_eq!(events(&["job.finished".into(), "job.finished".into()]).expect("ok"), ["job.finished"]);
        assert!(events(&["ping".into()]).is_err());
        assert!(events(&["job.exploded".into()]).expect_err("unknown").to_string().contains("task.created"));
        assert!(filter(&serde_json::json!({"install_id": "a", "gpu": true})).is_ok());
        assert_eq!(filter(&serde_json::Value::Null).expect("ok"), serde_json::json!({}));
        assert!(filter(&serde_json::json!({"labels": ["a"]})).is_err());
        assert!(filter(&serde_json::json!(["a"])).is_err());
    }
}
