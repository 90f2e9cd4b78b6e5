//! What a stream should show now: one neutral [`Reply`] per message, from a snapshot of the task, its job,
//! its approval and its output. Pure, so every layout rule is unit-tested without a store or a platform.

use std::ops::Range;

use chrono::{DateTime, Utc};
use cynode_adapters::split::{self, Budget};
use cynode_adapters::{
    Access, Actor, ApprovalCard, ApprovalState, Button, ButtonStyle, CANCEL_ACTION, Reply, code_block,
};
use cynode_protocol::JobSpec;
use serde_json::Value;
use uuid::Uuid;

use super::body::Body;
use super::text;
use crate::tasks::short;

/// A task as the stream sees it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) task_state: String,
    pub(crate) reply: Option<String>,
    pub(crate) requester: String,
    /// The requester's display name, when the platform sent one with the request.
    pub(crate) requester_name: Option<String>,
    /// `mention`, `command`, `action`; `None` for notices.
    pub(crate) inbound_kind: Option<String>,
    pub(crate) job: Option<JobView>,
    pub(crate) approval: Option<ApprovalView>,
    /// The agent turn this task's message shows, while it runs and no stop was asked for: the message then
    /// carries a Stop button.
    pub(crate) turn: Option<Uuid>,
}

/// The task's (latest) job.
#[derive(Debug, Clone)]
pub(crate) struct JobView {
    pub(crate) id: Uuid,
    pub(crate) state: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) result: Option<Value>,
    pub(crate) spec: Option<JobSpec>,
    /// Why no online node could take it when it was queued (`jobs.unschedulable`), shown while it waits.
    pub(crate) notice: Option<String>,
}

/// The job's approval request.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalView {
    pub(crate) state: String,
    pub(crate) decided_by: Option<String>,
    /// The approver's display name, when the platform sent one with the decision.
    pub(crate) decided_by_name: Option<String>,
    pub(crate) decided_at: Option<DateTime<Utc>>,
    pub(crate) expires_at: DateTime<Utc>,
    /// Why policy held the job.
    pub(crate) reason: Option<String>,
}

/// What to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum View {
    /// Messages in the thread, in order; `done` once nothing will change any more. `shows` says, per slot, the
    /// part of the output (byte offsets, see [`render_with`]) it shows, for slots that show a page of output.
    Thread { slots: Vec<Reply>, done: bool, shows: Vec<Option<Range<usize>>> },
    /// A private notice to the requester (a button click's answer), once the reply is known.
    Private(Option<String>),
}

const FINAL_TASK: [&str; 5] = ["answered", "failed", "succeeded", "cancelled", "waiting"];
const FINAL_JOB: [&str; 4] = ["succeeded", "failed", "cancelled", "timed_out"];

/// The view of `snap` with `body` (the current attempt's output), pages of `budget`, at most `max` messages.
#[cfg(test)]
pub(crate) fn render(snap: &Snapshot, body: Option<&Body>, budget: &Budget, max: usize) -> View {
    render_with(snap, body, budget, max, false, &[])
}

/// [`render`], with the job's status and final footer in a `header` message of their own when asked (for
/// streamed output: then every output message only ever grows, until it is full or the job ends).
///
/// `breaks` are where output pages ended when they were last shown (offsets as in `View::Thread::shows`): a
/// live page that fills up ends where it was last shown and the output it did not show yet starts the next
/// page, so filling a page costs one new message instead of an edit and a new message.
pub(crate) fn render_with(
    snap: &Snapshot,
    body: Option<&Body>,
    budget: &Budget,
    max: usize,
    header: bool,
    breaks: &[usize],
) -> View {
    let interpreted = snap.task_state != "received";
    if snap.inbound_kind.as_deref() == Some("action") {
        return View::Private(interpreted.then(|| snap.reply.clone().unwrap_or_else(|| "Done.".into())));
    }
    let Some(job) = &snap.job else {
        let text = match (&snap.reply, interpreted) {
            (Some(r), true) => r.clone(),
            (None, true) => "Done.".to_owned(),
            (_, false) => text::WORKING.to_owned(),
        };
        let done = interpreted && FINAL_TASK.contains(&snap.task_state.as_str());
        let mut slots = paged(&text, None, None, budget, max);
        if !done
            && let Some(turn) = snap.turn
            && let Some(last) = slots.last_mut()
        {
            last.buttons.extend(stop_button(turn));
        }
        return View::Thread { shows: vec![None; slots.len()], slots, done };
    };
    let mut slots = Vec::new();
    if let Some(approval) = &snap.approval {
        let requester = Actor { id: snap.requester.clone(), name: snap.requester_name.clone() };
        slots.push(Reply::default().with_approval(card(job, approval, requester)));
    }
    let finished = FINAL_JOB.contains(&job.state.as_str());
    let status = text::progress(&job.state, job.id, job.spec.as_ref(), job.attempt);
    let mut footer = Vec::new();
    if !finished && job.attempt > 1 {
        footer.push(text::retried(job.attempt, job.max_attempts));
    }
    if let (Some(notice), "queued") = (&job.notice, job.state.as_str()) {
        footer.push(format!("⚠️ {notice}"));
    }
    let empty = Body::default();
    let body = body.filter(|b| b.attempt == job.attempt).unwrap_or(&empty);
    let by_node = job.result.as_ref().and_then(|r| r.get("truncated")).and_then(Value::as_bool).unwrap_or(false);
    let output = output_slots(body, budget, max.saturating_sub(slots.len() + usize::from(header)).max(1), breaks);
    if finished {
        footer.push(text::outcome(&job.state, job.result.as_ref()));
        if output.cut || by_node {
            footer.push(text::truncated(job.id, body.line_count(), body.bytes, by_node));
        }
    }
    let footer = (!footer.is_empty()).then(|| footer.join("\n"));
    let approval_only = snap.approval.is_some() && job.state == "awaiting_approval";
    let mut shows = vec![None; slots.len()];
    if !approval_only && header {
        slots.push(Reply { status: Some(status), footer, ..Reply::default() });
        shows.push(None);
        slots.extend(output.pages.into_iter().map(|body| Reply { body, ..Reply::default() }));
        shows.extend(output.shows);
    } else if !approval_only {
        // Without output, one message shows the status alone.
        slots.extend(decorate(output.pages, Some(status), footer));
        shows.extend(output.shows);
        shows.resize(slots.len(), None);
    }
    View::Thread { slots, done: finished, shows }
}

/// Output pages (each already within the page budget), the output each shows (`None` for the tail view) and
/// whether some output is not shown.
struct Output {
    pages: Vec<String>,
    shows: Vec<Option<Range<usize>>>,
    cut: bool,
}

fn output_slots(body: &Body, budget: &Budget, max: usize, breaks: &[usize]) -> Output {
    if body.is_empty() {
        return Output { pages: Vec::new(), shows: Vec::new(), cut: false };
    }
    let head = inner(&body.head);
    let pages = split::split_with_breaks(&format!("{FENCE}{head}```"), budget, breaks);
    // Where each page's output ends, short of the block's closing fence (which moves as output grows).
    let end = FENCE.len() + head.len();
    let range = |p: &split::Page| Some(p.source().start..p.source().end.min(end));
    if body.is_whole() && pages.len() <= max {
        let shows = pages.iter().map(range).collect();
        return Output { pages: pages.into_iter().map(split::Page::into_text).collect(), shows, cut: false };
    }
    let keep = max - 1;
    let mut shows: Vec<Option<Range<usize>>> = pages.iter().take(keep).map(range).collect();
    shows.push(None);
    let mut shown: Vec<String> = pages.iter().take(keep).map(|p| p.text().to_owned()).collect();
    // The rest of the output, from where the kept pages end, as a tail view.
    let from = match (pages.get(keep), shown.is_empty()) {
        (Some(p), _) => p.source().start,
        (None, true) => 0,
        (None, false) => pages.get(keep.saturating_sub(1)).map_or(0, |p| p.source().end),
    };
    let from = from.saturating_sub(FENCE.len()).min(head.len());
    let from = (from..=head.len()).find(|i| head.is_char_boundary(*i)).unwrap_or(head.len());
    let mut rest = head[from..].to_owned();
    if body.dropped_bytes > 0 {
        rest.push_str("\n…\n");
    }
    rest.push_str(&inner(&body.tail));
    let tail = split::tail(&rest, &budget.shrink(8).unwrap_or(*budget));
    shown.push(format!("{FENCE}{}```", with_newline(tail.text())));
    Output { pages: shown, shows, cut: true }
}

const FENCE: &str = "```\n";

/// One message showing the output page `full` (waiting for its turn to be posted) and the page after it, `next`,
/// as one code block within `budget` (its tail when both do not fit), with `full`'s status line: a draft that
/// keeps the latest output on screen while the full page waits. `None` unless both are pages of output.
pub(crate) fn preview(full: &Reply, next: &Reply, budget: &Budget) -> Option<Reply> {
    let first = full.body.strip_prefix(FENCE)?.strip_suffix("```")?;
    let second = next.body.strip_prefix(FENCE)?.strip_suffix("```")?;
    let joined = format!("{first}{second}");
    let whole = format!("{FENCE}{joined}```");
    let body = if budget.fits(&whole) {
        whole
    } else {
        let tail = split::tail(&joined, &budget.shrink(8).unwrap_or(*budget));
        format!("{FENCE}{}```", with_newline(tail.text()))
    };
    Some(Reply { status: full.status.clone(), body, ..Reply::default() })
}

/// Output made safe inside a code block (fences broken), ending with a newline.
fn inner(text: &str) -> String {
    let block = code_block(text, "");
    let body = block.strip_prefix(FENCE).unwrap_or(&block);
    body.strip_suffix("```").unwrap_or(body).to_owned()
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") }
}

/// One reply per page: the status on the first, the footer on the last.
fn decorate(pages: Vec<String>, status: Option<String>, footer: Option<String>) -> Vec<Reply> {
    let pages = if pages.is_empty() { vec![String::new()] } else { pages };
    let last = pages.len() - 1;
    pages
        .into_iter()
        .enumerate()
        .map(|(i, body)| Reply {
            status: if i == 0 { status.clone() } else { None },
            body,
            footer: if i == last { footer.clone() } else { None },
            ..Reply::default()
        })
        .collect()
}

/// Plain text (a command's reply) as pages.
fn paged(text: &str, status: Option<String>, footer: Option<String>, budget: &Budget, max: usize) -> Vec<Reply> {
    let mut pages: Vec<String> = split::split(text, budget).into_iter().map(split::Page::into_text).collect();
    pages.truncate(max.max(1));
    decorate(pages, status, footer)
}

/// The label of a running agent turn's Stop button.
pub(crate) const STOP_LABEL: &str = "Stop";

/// The Stop button of a running agent turn's message. A click comes back as the action `cancel` with the turn's
/// full id, which the ingress turns into `cancel <turn id>`: the command path, so its permission check applies.
/// `cancel:` and a UUID take 43 bytes, within every platform's limit (Telegram's 64 is the tightest), so this is
/// never `None` in practice.
pub(crate) fn stop_button(turn: Uuid) -> Option<Button> {
    Button::new(CANCEL_ACTION, &turn.to_string(), STOP_LABEL, ButtonStyle::Danger).ok()
}

fn card(job: &JobView, a: &ApprovalView, requester: Actor) -> ApprovalCard {
    let actor = |id: &str| Actor { id: id.to_owned(), name: a.decided_by_name.clone() };
    let at = a.decided_at.map_or(0, |t| t.timestamp());
    let state = match (a.state.as_str(), &a.decided_by) {
        ("approved", Some(by)) => ApprovalState::Approved { by: actor(by), at },
        ("denied", Some(by)) => ApprovalState::Denied { by: actor(by), at },
        ("expired", _) => ApprovalState::Expired { at: a.decided_at.unwrap_or(a.expires_at).timestamp() },
        _ => ApprovalState::Pending { expires_at: Some(a.expires_at.timestamp()) },
    };
    let (command, template, access) = match &job.spec {
        Some(JobSpec::Sandbox(s)) => {
            (s.command.clone(), Some(s.template.clone()), Access { network: s.network, gpu: s.gpu })
        }
        Some(JobSpec::Host(h)) => (h.command.clone(), None, Access::default()),
        Some(JobSpec::Inference(i)) => (i.prompt.clone(), None, Access::default()),
        Some(JobSpec::Embed(e)) => (format!("embed {} texts with {}", e.input.len(), e.model), None, Access::default()),
        None => (String::new(), None, Access::default()),
    };
    ApprovalCard { job: short(job.id), command, requester, template, access, reason: a.reason.clone(), state }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "view_turn_tests.rs"]
mod turn_tests;
