//! The short lines users see in a thread: progress, the final status, and every error they can meet (denied,
//! expired, timed out, out of memory, output limit, node lost and retried, platform error).

use cynode_protocol::JobSpec;
use serde_json::Value;
use uuid::Uuid;

use crate::tasks::short;

/// The first reply, before the request is interpreted.
pub(crate) const WORKING: &str = "⏳ Working on it…";

/// What a job runs, as one short line of inline code.
pub(crate) fn what(spec: Option<&JobSpec>) -> String {
    let raw = match spec {
        Some(JobSpec::Sandbox(s)) => s.command.as_str(),
        Some(JobSpec::Host(h)) => h.command.as_str(),
        Some(JobSpec::Inference(i)) => i.prompt.as_str(),
        Some(JobSpec::Embed(_)) => "(embed)",
        None => "",
    };
    let one_line: String = raw
        .chars()
        .map(|c| {
            if c == '`' {
                'ˋ'
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut shown: String = one_line.chars().take(80).collect();
    if one_line.chars().count() > 80 {
        shown.push('…');
    }
    format!("`{shown}`")
}

/// The status line on the first output message.
pub(crate) fn progress(state: &str, job: Uuid, spec: Option<&JobSpec>, attempt: i32) -> String {
    let id = short(job);
    let what = what(spec);
    match state {
        "awaiting_approval" => format!("🔐 Waiting for approval · job `{id}` · {what}"),
        "queued" if attempt > 0 => format!("🔁 Re-queued · job `{id}` · {what}"),
        "queued" => format!("⏳ Queued · job `{id}` · {what}"),
        "leased" | "running" => format!("⏳ Running · job `{id}` · {what}"),
        "succeeded" => format!("✅ Job `{id}` · {what}"),
        "cancelled" => format!("🚫 Job `{id}` · {what}"),
        _ => format!("❌ Job `{id}` · {what}"),
    }
}

/// The note shown while a later attempt runs after a node was lost.
pub(crate) fn retried(attempt: i32, max: i32) -> String {
    format!("🔁 The node running this job was lost; retrying (attempt {attempt} of {max}).")
}

/// A duration as people read it.
pub(crate) fn duration(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// The final status line from a job's state and `result` (`status`, `exit_code`, `duration_ms`, `message`).
pub(crate) fn outcome(state: &str, result: Option<&Value>) -> String {
    let get = |k: &str| result.and_then(|r| r.get(k));
    let status = get("status").and_then(Value::as_str).unwrap_or(state);
    let ms = get("duration_ms").and_then(Value::as_u64).unwrap_or(0);
    let exit = get("exit_code").and_then(Value::as_i64).map(|c| format!(" · exit {c}")).unwrap_or_default();
    let message = get("message").and_then(Value::as_str).map(clean).unwrap_or_default();
    let took = duration(ms);
    match status {
        "succeeded" => format!("✅ Succeeded{exit} · {took}"),
        "failed" => format!("❌ Failed{exit} · {took}"),
        "timed_out" => format!("⏱ Timed out after {took}; the job was stopped."),
        "out_of_memory" => format!("💥 Out of memory: the job went over its memory limit and was killed after {took}."),
        "output_limit" => format!("✂️ Output limit reached: the job was stopped after {took}."),
        "cancelled" if message == "approval expired" => "⌛ The approval request expired; the job did not run.".into(),
        "cancelled" if message.starts_with("denied by ") => {
            format!("❌ Denied by {}; the job did not run.", &message["denied by ".len()..])
        }
        "cancelled" => {
            format!("🚫 Cancelled{}.", if message.is_empty() { String::new() } else { format!(" ({message})") })
        }
        "rejected" => format!("⚠️ The node refused the job: {message}"),
        _ => format!("⚠️ The job could not run: {}", if message.is_empty() { "node error" } else { &message }),
    }
}

/// The notice when the thread does not show everything, with the ways to fetch it all.
pub(crate) fn truncated(job: Uuid, lines: u64, bytes: u64, by_node: bool) -> String {
    let why = if by_node { "The job's output was cut at its limit" } else { "Output is truncated here" };
    format!(
        "✂️ {why} ({lines} lines, {} KiB). Full output: `cynode logs {}` or `GET /v1/jobs/{job}/output`.",
        bytes.div_ceil(1024),
        short(job)
    )
}

/// The line that replaces content a platform refused.
pub(crate) fn platform_error(reason: &str) -> String {
    format!("⚠️ The platform refused this message ({reason}); the full result is available with `cynode logs`.")
}

/// A node's message, made safe and short for a status line.
fn clean(text: &str) -> String {
    let t: String = text.chars().map(|c| if c.is_control() || c == '`' { ' ' } else { c }).take(200).collect();
    t.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_user_visible_error_is_one_clear_line() {
        let cases = [
            (
                "failed",
                json!({"status": "succeeded", "exit_code": 0, "duration_ms": 1234}),
                "✅ Succeeded · exit 0 · 1.2 s",
            ),
            ("failed", json!({"status": "failed", "exit_code": 2, "duration_ms": 400}), "❌ Failed · exit 2 · 0.4 s"),
            (
                "timed_out",
                json!({"status": "timed_out", "duration_ms": 300_000}),
                "⏱ Timed out after 5 min 0 s; the job was stopped.",
            ),
            ("failed", json!({"status": "out_of_memory", "duration_ms": 10}), "💥 Out of memory"),
            ("failed", json!({"status": "output_limit", "duration_ms": 10}), "✂️ Output limit reached"),
            (
                "cancelled",
                json!({"status": "cancelled", "message": "denied by U9"}),
                "❌ Denied by U9; the job did not run.",
            ),
            (
                "cancelled",
                json!({"status": "cancelled", "message": "approval expired"}),
                "⌛ The approval request expired",
            ),
        ];
        for (state, result, want) in cases {
            let line = outcome(state, Some(&result));
            assert!(line.starts_with(want), "{line} should start with {want}");
            assert!(!line.contains('\n'));
        }
        assert!(retried(2, 3).contains("node running this job was lost"));
        assert!(platform_error("too_long").contains("platform refused"));
    }
}
