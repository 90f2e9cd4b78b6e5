//! `cynode subs …`: outbound webhook subscriptions through the user API. Human output by default, one JSON
//! document with `--json`. Exit code 0 on success, 1 when the API refuses or cannot be reached (the message says
//! why), 2 for usage errors.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::client::ApiClient;
use crate::cli::SubsCommand;
use crate::routes::api::model_subs::{
    CreatedSubscriptionResponse, Delivery, DeliveryList, DeliveryState, QueuedDelivery, ReplayRangeResponse,
    RotateResponse, Subscription, SubscriptionList,
};

/// How long `subs test` waits for the ping's outcome.
const TEST_WAIT: Duration = Duration::from_secs(20);

/// Runs `cynode subs …`.
///
/// # Errors
/// API failures and bad arguments, phrased for the user.
pub async fn run(cmd: SubsCommand, api: &ApiClient) -> anyhow::Result<()> {
    let json = cmd.client().json;
    match cmd {
        SubsCommand::Add { endpoint: url, events, name, install, filter, .. } => {
            let filter = filter.map(|f| serde_json::from_str::<serde_json::Value>(&f)).transpose().map_err(|e| {
                anyhow::anyhow!("--filter is not JSON ({e}); e.g. --filter '{{\"template\":\"python\"}}'")
            })?;
            let name = name.unwrap_or_else(|| default_name(&url));
            let body = json!({ "name": name, "url": url, "event_types": events, "filter": filter,
                               "install_id": install });
            let created: CreatedSubscriptionResponse = api.post("/v1/subscriptions", &body).await?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("{}", created.secret);
                let s = &created.subscription;
                eprintln!(
                    "created subscription `{}` ({}) → {} for {}; the signing secret above is shown only now — give it \
                     to the receiver (Standard Webhooks `whsec_…`)",
                    s.name,
                    s.id,
                    s.url,
                    events_text(s)
                );
            }
        }
        SubsCommand::List(_) => {
            let list: SubscriptionList = api.get("/v1/subscriptions").await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.subscriptions.is_empty() {
                println!("No subscriptions. Add one: cynode subs add https://example.org/hook --events job.finished");
            } else {
                println!("{:<36}  {:<24}  {:<9}  {:<28}  URL", "ID", "NAME", "STATE", "EVENTS");
                for s in &list.subscriptions {
                    println!("{:<36}  {:<24}  {:<9}  {:<28}  {}", s.id, s.name, state(s), events_text(s), s.url);
                }
            }
        }
        SubsCommand::Show { sub, .. } => {
            let s: Subscription = api.get(&format!("/v1/subscriptions/{}", seg(&sub))).await?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                print_subscription(&s);
            }
        }
        SubsCommand::Test { sub, .. } => test(api, &sub, json).await?,
        SubsCommand::Deliveries { sub, state, limit, .. } => {
            let mut path = format!("/v1/subscriptions/{}/deliveries?limit={}", seg(&sub), limit.clamp(1, 1000));
            if let Some(s) = state {
                path.push_str(&format!("&state={}", seg(&s)));
            }
            let list: DeliveryList = api.get(&path).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.deliveries.is_empty() {
                println!("No deliveries.");
            } else {
                println!(
                    "{:<36}  {:<20}  {:<9}  {:>8}  {:<20}  LAST",
                    "DELIVERY", "TYPE", "STATE", "ATTEMPTS", "CREATED"
                );
                for d in &list.deliveries {
                    let created = d.created_at.format("%Y-%m-%d %H:%M:%S").to_string();
                    let (st, attempts) = (state_name(d.state), d.attempts);
                    println!("{:<36}  {:<20}  {st:<9}  {attempts:>8}  {created:<20}  {}", d.id, d.event_type, last(d));
                }
            }
        }
        SubsCommand::Replay { target, since: Some(since), until, include_delivered, .. } => {
            let now = Utc::now();
            let since = parse_when(&since, now)?;
            let until = until.map(|u| parse_when(&u, now)).transpose()?;
            let body = json!({ "since": since, "until": until, "include_delivered": include_delivered });
            let r: ReplayRangeResponse = api.post(&format!("/v1/subscriptions/{}/replay", seg(&target)), &body).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("queued {} deliveries of `{target}` again (same webhook-id each)", r.queued);
            }
        }
        SubsCommand::Replay { target, .. } => {
            let r: QueuedDelivery = api.post(&format!("/v1/deliveries/{}/replay", seg(&target)), &json!({})).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("queued delivery {} (same webhook-id as {target})", r.delivery_id);
            }
        }
        SubsCommand::Rotate { sub, grace, .. } => {
            let grace = grace.map(|g| parse_duration(&g)).transpose()?.map(|d| d.as_secs());
            let body = json!({ "grace_seconds": grace });
            let r: RotateResponse = api.post(&format!("/v1/subscriptions/{}/rotate", seg(&sub)), &body).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", r.secret);
                eprintln!(
                    "rotated the secret of `{sub}`: the new one above (shown only now) signs from now on; the previous \
                     one signs too until {}",
                    r.previous_valid_until.to_rfc3339()
                );
            }
        }
        SubsCommand::Disable { sub, .. } => set_enabled(api, &sub, false, json).await?,
        SubsCommand::Enable { sub, .. } => set_enabled(api, &sub, true, json).await?,
        SubsCommand::Rm { sub, .. } => {
            api.delete(&format!("/v1/subscriptions/{}", seg(&sub))).await?;
            if json {
                println!("{}", json!({ "deleted": sub }));
            } else {
                println!("deleted subscription `{sub}` and its delivery history");
            }
        }
    }
    Ok(())
}

async fn set_enabled(api: &ApiClient, sub: &str, enabled: bool, json: bool) -> anyhow::Result<()> {
    let s: Subscription = api.patch(&format!("/v1/subscriptions/{}", seg(sub)), &json!({ "enabled": enabled })).await?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else if enabled {
        println!(
            "enabled `{}`; deliveries stopped while it was disabled are not resent: use `cynode subs replay {} --since …`",
            s.name, s.name
        );
    } else {
        println!("disabled `{}`; its pending deliveries stopped", s.name);
    }
    Ok(())
}

/// Queues a ping and waits until it is delivered or fails.
async fn test(api: &ApiClient, sub: &str, json: bool) -> anyhow::Result<()> {
    let q: QueuedDelivery = api.post(&format!("/v1/subscriptions/{}/test", seg(sub)), &json!({})).await?;
    let deadline = tokio::time::Instant::now() + TEST_WAIT;
    let mut d: Delivery = api.get(&format!("/v1/deliveries/{}", q.delivery_id)).await?;
    // Pending with no outcome recorded: not attempted yet, or the first attempt is in flight.
    let undecided =
        |d: &Delivery| d.state == DeliveryState::Pending && d.last_status.is_none() && d.last_error.is_none();
    let mut spinner = super::say::Spinner::new(!json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    while undecided(&d) && tokio::time::Instant::now() < deadline {
        spinner.tick();
        tokio::time::sleep(Duration::from_millis(250)).await;
        d = api.get(&format!("/v1/deliveries/{}", q.delivery_id)).await?;
    }
    spinner.clear();
    if json {
        println!("{}", serde_json::to_string(&d)?);
    } else if d.state == DeliveryState::Delivered {
        println!("ping delivered to `{sub}` ({}, webhook-id {})", last(&d), d.msg_id);
    } else if d.last_attempt_at.is_none() {
        println!("ping {} queued, not attempted yet (is a gateway running?)", d.id);
    } else {
        println!("ping {} not delivered yet: {}; retried on the usual schedule", d.id, last(&d));
    }
    if d.state == DeliveryState::Delivered { Ok(()) } else { anyhow::bail!("the test message was not delivered") }
}

fn print_subscription(s: &Subscription) {
    println!("id          {}", s.id);
    println!("name        {}", s.name);
    println!("url         {}", s.url);
    println!("events      {}", events_text(s));
    println!("filter      {}", s.filter);
    println!("install     {}", s.install_id.map_or_else(|| "all (global)".to_string(), |i| i.to_string()));
    println!("state       {}", state(s));
    if let Some(r) = &s.disabled_reason {
        println!("disabled    {r}");
    }
    if let Some(f) = s.failing_since {
        println!("failing     since {}", f.to_rfc3339());
    }
    if let Some(r) = s.rotation_ends_at {
        println!("rotation    previous secret signs until {}", r.to_rfc3339());
    }
}

fn events_text(s: &Subscription) -> String {
    if s.event_types.is_empty() { "all (except job.output)".into() } else { s.event_types.join(",") }
}

fn state(s: &Subscription) -> &'static str {
    match (s.enabled, s.failing_since.is_some()) {
        (false, _) => "disabled",
        (true, true) => "failing",
        (true, false) => "enabled",
    }
}

fn state_name(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Dead => "dead",
    }
}

fn last(d: &Delivery) -> String {
    match (d.last_status, &d.last_error) {
        (Some(code), _) if d.state == DeliveryState::Delivered => format!("HTTP {code}"),
        (_, Some(e)) => e.clone(),
        (Some(code), None) => format!("HTTP {code}"),
        (None, None) => "-".into(),
    }
}

/// A name from the URL's host plus a short random suffix, e.g. `hooks.example.org-3fa2c1`.
fn default_name(url: &str) -> String {
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "sub".into());
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .take(80)
        .collect();
    format!("{host}-{}", &hex::encode(rand::random::<[u8; 3]>()))
}

/// Percent-encodes one path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `90s`, `30m`, `12h`, `2d` or a number of seconds.
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("`{s}` is not a duration; use e.g. 90s, 30m, 12h, 2d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("`{s}` is not a duration; use e.g. 90s, 30m, 12h, 2d"),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

/// An RFC 3339 time, `now`, or an age (`30m` = 30 minutes ago).
pub(crate) fn parse_when(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if s.trim() == "now" {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let age = parse_duration(s).map_err(|_| {
        anyhow::anyhow!("`{s}` is neither an RFC 3339 time (2026-11-22T10:00:00Z) nor an age such as 30m, 2h, 1d")
    })?;
    Ok(now - chrono::Duration::from_std(age)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse() {
        let now = Utc::now();
        assert_eq!(parse_when("2h", now).expect("age"), now - chrono::Duration::hours(2));
        assert_eq!(parse_when("now", now).expect("now"), now);
        let t = parse_when("2026-11-22T10:00:00Z", now).expect("rfc3339");
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00+00:00");
        assert!(parse_when("yesterday", now).is_err());
        assert_eq!(parse_duration("90").expect("secs"), Duration::from_secs(90));
        assert_eq!(parse_duration("1d").expect("day"), Duration::from_secs(86_400));
        assert!(parse_duration("5w").is_err());
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        let name = default_name("https://hooks.example.org:8443/x");
        assert!(name.starts_with("hooks.example.org-") && name.len() == "hooks.example.org-".len() + 6, "{name}");
    }
}
