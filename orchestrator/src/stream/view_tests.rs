use cynode_adapters::split::Budget;
use cynode_protocol::{HostSpec, JobSpec};
use serde_json::json;
use uuid::Uuid;

use super::{JobView, Snapshot, View, render};
use crate::stream::body::Body;

fn snap(state: &str, job: Option<JobView>) -> Snapshot {
    Snapshot {
        task_state: state.into(),
        reply: Some("Job queued".into()),
        requester: "U1".into(),
        requester_name: None,
        inbound_kind: Some("mention".into()),
        job,
        approval: None,
        turn: None,
    }
}

fn job(state: &str, result: Option<serde_json::Value>) -> JobView {
    JobView {
        id: Uuid::new_v4(),
        state: state.into(),
        attempt: 1,
        max_attempts: 3,
        result,
        spec: Some(JobSpec::Host(HostSpec { command: "seq 10000".into(), timeout_s: 60, max_output_bytes: 1 << 20 })),
        notice: None,
    }
}

fn slots(v: View) -> (Vec<cynode_adapters::Reply>, bool) {
    match v {
        View::Thread { slots, done, .. } => (slots, done),
        View::Private(_) => panic!("expected a thread view"),
    }
}

#[test]
fn first_reply_before_interpretation_is_working_on_it() {
    let mut s = snap("received", None);
    s.reply = None;
    let (slots, done) = slots(render(&s, None, &Budget::utf16(3000).unwrap(), 4));
    assert_eq!(slots.len(), 1);
    assert!(slots[0].body.contains("Working on it"));
    assert!(!done);
}

#[test]
fn long_output_rolls_over_then_tails_and_says_how_to_get_everything() {
    let budget = Budget::utf16(1300).unwrap();
    let mut body = Body::new(1);
    for i in 0..10_000 {
        body.push(&format!("line {i}\n"));
    }
    let result = json!({"status": "succeeded", "exit_code": 0, "duration_ms": 2500});
    let (slots, done) =
        slots(render(&snap("succeeded", Some(job("succeeded", Some(result)))), Some(&body), &budget, 4));
    assert!(done);
    assert_eq!(slots.len(), 4);
    for s in &slots {
        assert!(budget.fits(&s.body), "every page fits");
        assert_eq!(s.body.matches("```").count() % 2, 0, "fences balanced");
    }
    assert!(slots[0].body.contains("line 0\n"));
    assert!(slots[3].body.contains("line 9999"));
    let footer = slots[3].footer.clone().unwrap();
    assert!(footer.contains("Succeeded · exit 0 · 2.5 s"));
    assert!(footer.contains("cynode logs") && footer.contains("/output"));
}

#[test]
fn full_pages_do_not_change_when_output_grows() {
    let budget = Budget::utf16(1300).unwrap();
    let mut body = Body::new(1);
    let j = job("running", None);
    let mut before = Vec::new();
    for i in 0..1_000 {
        body.push(&format!("row {i}\n"));
        let (slots, _) = slots(render(&snap("running", Some(j.clone())), Some(&body), &budget, 8));
        if slots.len() > 2 && before.len() > 2 {
            assert_eq!(slots[0], before[0]);
        }
        before = slots;
    }
    assert!(before.len() > 2);
}

#[test]
fn button_clicks_are_answered_privately() {
    let mut s = snap("answered", None);
    s.inbound_kind = Some("action".into());
    s.reply = Some("You are not an approver for job `abcd1234`.".into());
    assert_eq!(render(&s, None, &Budget::utf16(3000).unwrap(), 4), View::Private(s.reply.clone()));
}

#[test]
fn a_preview_shows_a_full_page_with_the_output_after_it() {
    let budget = Budget::utf16(200).unwrap();
    let mut body = Body::new(1);
    for i in 0..40 {
        body.push(&format!("row {i:02}\n"));
    }
    let (slots, _) = slots(render(&snap("running", Some(job("running", None))), Some(&body), &budget, 8));
    assert_eq!(slots.len(), 2, "{slots:?}");
    let preview = super::preview(&slots[0], &slots[1], &Budget::utf16(3000).unwrap()).unwrap();
    assert_eq!(preview.status, slots[0].status, "the full page's status line");
    let rows: String = (0..40).map(|i| format!("row {i:02}\n")).collect::<String>();
    let shown = slots[0].body.len() + slots[1].body.len() - 7;
    assert!(preview.body.starts_with("```\nrow 00\n") && preview.body.len() == shown, "{}", preview.body);
    assert!(rows.starts_with(preview.body.trim_start_matches("```\n").trim_end_matches("```")));
    // When both do not fit, the newest output is what shows.
    let small = super::preview(&slots[0], &slots[1], &budget).unwrap();
    assert!(
        budget.fits(&small.body)
            && small.body.contains(slots[1].body.trim_start_matches("```\n").trim_end_matches("```"))
    );
    assert!(!small.body.contains("row 00\n"), "{}", small.body);
    assert!(super::preview(&cynode_adapters::Reply::new("not output"), &slots[1], &budget).is_none());
}

#[test]
fn work_nobody_can_take_says_why_in_the_thread_while_it_waits() {
    let why = "No online node offers template `rogue`: build its image on a node.";
    let mut j = job("queued", None);
    j.attempt = 0;
    j.notice = Some(why.into());
    let (shown, done) = slots(render(&snap("queued", Some(j.clone())), None, &Budget::utf16(3000).unwrap(), 4));
    assert!(!done);
    assert_eq!(shown.len(), 1);
    assert!(shown[0].status.as_deref().is_some_and(|s| s.contains("Queued")), "{shown:?}");
    assert_eq!(shown[0].footer.as_deref(), Some(format!("⚠️ {why}").as_str()));
    // Once a node took it, the notice is gone.
    j.state = "running".into();
    j.attempt = 1;
    let (shown, _) = slots(render(&snap("queued", Some(j)), None, &Budget::utf16(3000).unwrap(), 4));
    assert_eq!(shown[0].footer, None, "{shown:?}");
}
