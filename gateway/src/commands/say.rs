//! `cynode say "<command>"`: submits through the user API and follows the task's event stream, printing output
//! as it arrives and a final status line. Exit codes: 0 success (or a command answered, like `help` or
//! `status`), 1 the job failed, 2 usage or API error (an unknown command word or input the grammar refuses
//! included), 3 timed out or cancelled, 4 the command was refused (nothing was done: a template that does not
//! exist, a job that is not yours, work no node could take when such work is refused at once).

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use serde_json::json;

use super::client::{ApiClient, SseEvent};
use crate::cli::SayArgs;
use crate::routes::api::model::{EndEvent, SubmitResponse, TaskEvent};

pub use super::admin::ensure_local_token;

/// Exit code: the job succeeded (or the command was answered).
pub const EXIT_OK: u8 = 0;
/// Exit code: the job failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or an API error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: timed out or cancelled.
pub const EXIT_TIMEOUT: u8 = 3;
/// Exit code: the command was understood but refused; nothing was done.
pub const EXIT_REFUSED: u8 = 4;

/// Terminal styling: colours and a spinner only when stderr is a terminal.
struct Style {
    tty: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.tty { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}

/// Runs `cynode say` and returns the exit code.
pub async fn run(args: SayArgs, api: ApiClient) -> u8 {
    let style = Style { tty: std::io::stderr().is_terminal() };
    let json_out = args.client.json;
    let text = args.text.join(" ");
    let submitted: SubmitResponse = match api.post("/v1/tasks", &json!({ "text": text })).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if json_out {
        println!("{}", json!({ "type": "submitted", "response": submitted }));
    } else {
        eprintln!("{}", style.paint("1", &submitted.reply));
    }
    if submitted.job_id.is_none() {
        // Answered at once (help, status, a refusal or a grammar error).
        return match (submitted.refused, submitted.task.command.as_str()) {
            (_, "invalid") | (true, "help") => EXIT_USAGE,
            (true, _) => EXIT_REFUSED,
            (false, _) => EXIT_OK,
        };
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    match tokio::time::timeout_at(deadline, follow(&api, &submitted, json_out, &style)).await {
        Ok(code) => code,
        Err(_) => {
            let msg =
                format!("gave up waiting after {} s; the task goes on (task {})", args.timeout, submitted.task_id);
            if json_out {
                println!("{}", json!({ "type": "timeout", "message": msg }));
            }
            eprintln!("{}", style.paint("33", &msg));
            EXIT_TIMEOUT
        }
    }
}

/// Follows the task's events to the end, reconnecting with `Last-Event-ID` when the stream is cut.
async fn follow(api: &ApiClient, s: &SubmitResponse, json_out: bool, style: &Style) -> u8 {
    let path = format!("/v1/tasks/{}/events", s.task_id);
    let mut last: Option<String> = None;
    let mut timed_out = false;
    let mut spinner = Spinner::new(style.tty && !json_out);
    loop {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
        let (api2, path2, last2) = (api.clone(), path.clone(), last.clone());
        let reader = tokio::spawn(async move { api2.sse(&path2, last2.as_deref(), &tx).await });
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                () = tokio::time::sleep(Duration::from_millis(100)) => { spinner.tick(); continue; }
            };
            let Some(ev) = ev else { break };
            if ev.id.is_some() {
                last.clone_from(&ev.id);
            }
            if ev.event == "end" {
                spinner.clear();
                let end: EndEvent =
                    serde_json::from_str(&ev.data).unwrap_or(EndEvent { state: "failed".into(), reply: None });
                return finish(&end, timed_out, json_out, style);
            }
            let Ok(event) = serde_json::from_str::<TaskEvent>(&ev.data) else { continue };
            if json_out {
                println!("{}", json!({ "type": "event", "event": event }));
                continue;
            }
            match event {
                TaskEvent::Output { data, stream, .. } => {
                    spinner.clear();
                    if stream == "stderr" {
                        eprint!("{data}");
                    } else {
                        print!("{data}");
                        let _ = std::io::stdout().flush();
                    }
                }
                TaskEvent::Job { state, result, .. } => {
                    timed_out |= state == "timed_out";
                    if let Some(r) = result {
                        spinner.clear();
                        eprintln!("{}", style.paint("2", &describe(&state, &r)));
                    }
                }
                TaskEvent::Task { .. } => {}
            }
        }
        match reader.await {
            Ok(Err(e)) => {
                spinner.clear();
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
            // The stream was cut: resume after the last event seen.
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn describe(state: &str, result: &serde_json::Value) -> String {
    let mut parts = vec![format!("job {state}")];
    if let Some(code) = result.get("exit_code").and_then(serde_json::Value::as_i64) {
        parts.push(format!("exit {code}"));
    }
    if let Some(ms) = result.get("duration_ms").and_then(serde_json::Value::as_u64) {
        parts.push(format!("{ms} ms"));
    }
    if result.get("truncated").and_then(serde_json::Value::as_bool) == Some(true) {
        parts.push("output truncated".into());
    }
    let line = parts.join(", ");
    // Why it failed, as the node reported it (a model provider down, an image missing), on the same line.
    match result.get("message").and_then(serde_json::Value::as_str).map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) if state != "succeeded" => {
            let first = m.lines().next().unwrap_or_default();
            let short: String = first.chars().take(300).collect();
            format!("{line}: {short}")
        }
        _ => line,
    }
}

fn finish(end: &EndEvent, timed_out: bool, json_out: bool, style: &Style) -> u8 {
    let code = match end.state.as_str() {
        "succeeded" | "answered" => EXIT_OK,
        "cancelled" => EXIT_TIMEOUT,
        _ if timed_out => EXIT_TIMEOUT,
        _ => EXIT_FAILED,
    };
    if json_out {
        println!("{}", json!({ "type": "end", "state": end.state, "reply": end.reply, "exit_code": code }));
    } else {
        let (mark, colour) = if code == EXIT_OK { ("✓", "32") } else { ("✗", "31") };
        eprintln!("{}", style.paint(colour, &format!("{mark} {}", end.state)));
    }
    code
}

/// A spinner on stderr while nothing else is printed (terminals only).
pub(super) struct Spinner {
    on: bool,
    frame: usize,
    shown: bool,
}

impl Spinner {
    pub(super) fn new(on: bool) -> Self {
        Self { on, frame: 0, shown: false }
    }

    pub(super) fn tick(&mut self) {
        if !self.on {
            return;
        }
        const FRAMES: [&str; 4] = ["|", "/", "-", "\\"];
        self.frame = (self.frame + 1) % FRAMES.len();
        eprint!("\r{} waiting…", FRAMES[self.frame]);
        self.shown = true;
    }

    pub(super) fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
        // Once output flows, the spinner would interleave with it.
        self.on = false;
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_failed_job_says_why_on_its_line() {
        let result = serde_json::json!({
            "status": "failed", "duration_ms": 0, "truncated": false,
            "message": "the model provider `cloud` answered HTTP 503\nmore detail"
        });
        assert_eq!(describe("failed", &result), "job failed, 0 ms: the model provider `cloud` answered HTTP 503");
        let ok = serde_json::json!({ "exit_code": 0, "duration_ms": 12, "message": "note" });
        assert_eq!(describe("succeeded", &ok), "job succeeded, exit 0, 12 ms");
    }
}
