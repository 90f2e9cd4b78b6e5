//! The approval flow on Slack with real processes: policy holds a sandbox job, the approval card with Block Kit
//! buttons appears in the thread, a click by someone who is not an approver is refused privately and changes
//! nothing, the approver's click runs the job in Docker, and the card is updated to say who decided and when.
//! Also: deny (the job is cancelled) and expiry (the card says expired).

use std::time::Duration;

use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::Message;
use serde_json::Value;

use crate::chat::{APPROVER, Chat, REQUESTER, SlackClick, approval_policy, eventually, slack_install};

const CHANNEL: &str = "C0APPROVE";
const THREAD: &str = "1700000100.000100";
const LIMIT: Duration = Duration::from_secs(60);

/// The card: the thread's message whose blocks carry the approve button; returns it and the button's value.
fn card(fake: &FakeSlack) -> Option<(Message, String)> {
    fake.messages_in(CHANNEL, Some(THREAD)).into_iter().find_map(|m| {
        let value = button_value(m.blocks.as_ref()?, "approve")?;
        Some((m, value))
    })
}

fn button_value(blocks: &Value, action: &str) -> Option<String> {
    blocks.as_array()?.iter().filter(|b| b["type"] == "actions").find_map(|b| {
        let button = b["elements"].as_array()?.iter().find(|e| e["action_id"] == action)?;
        button["value"].as_str().map(str::to_owned)
    })
}

fn thread_text(fake: &FakeSlack) -> String {
    fake.messages_in(CHANNEL, Some(THREAD)).iter().map(Message::shown).collect::<Vec<_>>().join("\n---\n")
}

async fn held(extra_env: &[(&str, &str)]) -> (Chat, FakeSlack, Message, String) {
    let fake = FakeSlack::start().await;
    let chat =
        Chat::start(&slack_install(&fake.base_url(), fake.token()), &approval_policy(&[APPROVER]), extra_env).await;
    chat.slack_mention("Ev0APPROVE1", REQUESTER, CHANNEL, THREAD, "run echo approved-output; echo line-two").await;
    let (card, value) = eventually(LIMIT, "the approval card", || card(&fake), || thread_text(&fake)).await;
    (chat, fake, card, value)
}

fn click<'a>(user: &'a str, action: &'a str, card: &'a Message, value: &'a str, url: &'a str) -> SlackClick<'a> {
    SlackClick {
        user,
        channel: CHANNEL,
        thread: THREAD,
        message_ts: &card.ts,
        action_id: action,
        value,
        response_url: url,
    }
}

#[tokio::test]
async fn a_held_job_runs_after_the_approvers_click_and_the_card_says_who_approved() {
    let (chat, fake, card0, value) = held(&[]).await;
    let shown = card0.shown();
    assert!(shown.contains("Approval needed"), "{shown}");
    assert!(shown.contains("echo approved-output; echo line-two"), "names the command: {shown}");
    assert!(shown.contains(&format!("<@{REQUESTER}>")), "names the requester: {shown}");
    assert!(shown.contains("busybox") && shown.contains("no network"), "template and access: {shown}");
    assert!(shown.contains("Why: template busybox"), "the policy's reason: {shown}");
    let job = chat.only_job().await;
    assert_eq!(chat.job_state(job).await, ("awaiting_approval".into(), Some("pending".into())));

    // Someone who is not an approver clicks: a private refusal, nothing else changes.
    let url = fake.response_url(CHANNEL, REQUESTER, Some(&card0.ts));
    chat.slack_click(&click(REQUESTER, "approve", &card0, &value, &url)).await;
    let refusal = eventually(
        LIMIT,
        "the private refusal",
        || fake.ephemerals().into_iter().find(|m| m.ephemeral_to.as_deref() == Some(REQUESTER)),
        || format!("{:?}", fake.ephemerals()),
    )
    .await;
    assert!(refusal.shown().contains("not an approver"), "{}", refusal.shown());
    assert_eq!(refusal.thread_ts.as_deref(), Some(THREAD), "the refusal is shown in the card's thread");
    assert_eq!(chat.job_state(job).await, ("awaiting_approval".into(), Some("pending".into())), "still held");
    assert!(
        fake.message(CHANNEL, &card0.ts).is_some_and(|m| button_value(m.blocks.as_ref().unwrap(), "approve").is_some()),
        "the card still offers its buttons"
    );

    // The approver clicks: the job runs in Docker, output and status arrive, the card says who approved.
    let url = fake.response_url(CHANNEL, APPROVER, Some(&card0.ts));
    chat.slack_click(&click(APPROVER, "approve", &card0, &value, &url)).await;
    let all = eventually(
        LIMIT,
        "the job's final status and its output (posted in order, under the per-channel posting budget)",
        || Some(thread_text(&fake)).filter(|t| t.contains("Succeeded") && t.contains("approved-output\nline-two")),
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    assert!(all.contains("approved-output\nline-two"), "output in the thread:\n{all}");
    assert!(all.contains("Succeeded · exit 0"), "{all}");
    let card1 = fake.message(CHANNEL, &card0.ts).expect("the card");
    let shown = card1.shown();
    assert!(shown.contains(&format!("Approved by <@{APPROVER}> at <!date^")), "who and when: {shown}");
    assert!(button_value(card1.blocks.as_ref().unwrap(), "approve").is_none(), "buttons gone: {shown}");
    assert!(card1.edits >= 1 && fake.calls_to("chat.update").iter().any(|c| c.params["ts"] == card0.ts.as_str()));

    // Recorded and audited: the refusal, the decision, with who decided.
    assert_eq!(chat.job_state(job).await, ("succeeded".into(), Some("approved".into())));
    let (by, reason): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT decided_by, reason FROM approvals WHERE job_id = $1")
            .bind(job)
            .fetch_one(&chat.db.pool)
            .await
            .expect("approval");
    assert_eq!(by.as_deref(), Some(APPROVER));
    assert_eq!(reason.as_deref(), Some("template busybox; approval by U0APPROVER"), "the card says who may approve");
    let audit = chat.audit().await;
    let actions: Vec<(&str, &str)> = audit.iter().map(|(a, b, _)| (a.as_str(), b.as_str())).collect();
    for expected in
        [(REQUESTER, "approval.requested"), (REQUESTER, "approval.refused"), (APPROVER, "approval.resolved")]
    {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }

    // Every post stayed in the thread; nothing was rate limited or refused.
    let posts = fake.calls_to("chat.postMessage");
    assert!(posts.iter().all(|c| c.params["thread_ts"] == THREAD), "every post in the thread");
    assert_eq!(fake.count_429(), 0);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn a_denied_job_is_cancelled_and_the_card_says_denied() {
    let (chat, fake, card0, value) = held(&[]).await;
    let url = fake.response_url(CHANNEL, APPROVER, Some(&card0.ts));
    chat.slack_click(&click(APPROVER, "deny", &card0, &value, &url)).await;
    let card1 = eventually(
        LIMIT,
        "the denied card",
        || fake.message(CHANNEL, &card0.ts).filter(|m| m.shown().contains("Denied by")),
        || thread_text(&fake),
    )
    .await;
    assert!(card1.shown().contains(&format!("Denied by <@{APPROVER}>")), "{}", card1.shown());
    let job = chat.only_job().await;
    assert_eq!(chat.job_state(job).await, ("cancelled".into(), Some("denied".into())));
    let all = eventually(
        LIMIT,
        "the denied status",
        || Some(thread_text(&fake)).filter(|t| t.contains("Denied by U0APPROVER; the job did not run")),
        || thread_text(&fake),
    )
    .await;
    assert!(!all.contains("approved-output\nline-two") && !all.contains("Succeeded"), "the job never ran:\n{all}");
    assert_eq!(fake.count_429(), 0);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn an_unanswered_approval_expires_and_the_card_says_expired() {
    let (chat, fake, card0, value) = held(&[("CYNODE__COMMANDS__APPROVAL_TTL_S", "2")]).await;
    let card1 = eventually(
        LIMIT,
        "the expired card",
        || fake.message(CHANNEL, &card0.ts).filter(|m| m.shown().contains("Expired")),
        || thread_text(&fake),
    )
    .await;
    assert!(card1.shown().contains("without a decision"), "{}", card1.shown());
    let job = chat.only_job().await;
    assert_eq!(chat.job_state(job).await, ("cancelled".into(), Some("expired".into())));
    // A late click is answered privately and changes nothing.
    let url = fake.response_url(CHANNEL, APPROVER, Some(&card0.ts));
    chat.slack_click(&click(APPROVER, "approve", &card0, &value, &url)).await;
    let late = eventually(
        LIMIT,
        "the answer to a late click",
        || fake.ephemerals().into_iter().find(|m| m.ephemeral_to.as_deref() == Some(APPROVER)),
        || format!("{:?}", fake.ephemerals()),
    )
    .await;
    assert!(late.shown().contains("not waiting for approval: its approval request expired"), "{}", late.shown());
    assert_eq!(chat.job_state(job).await, ("cancelled".into(), Some("expired".into())));
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

/// Team mode end to end: a member's GPU job needs two of three approvers. The card says so, the requester (an
/// approver too) cannot approve their own job, the first approval is acknowledged privately and leaves the job
/// held, a second click by the same approver does not count twice, and the second approver's click releases it.
#[tokio::test]
async fn a_members_gpu_job_needs_two_approvers() {
    const A1: &str = "U0APPROVER1";
    const A2: &str = "U0APPROVER2";
    let fake = FakeSlack::start().await;
    let team = format!(
        "policy:\n  - {{when: {{gpu: true}}, approvers: ['{A1}', '{A2}', '{APPROVER}', '{REQUESTER}'], approvals: 2}}\n\
         teams:\n  - {{install: acme, default_role: none, roles: {{{REQUESTER}: member, {A1}: approver, \
         {A2}: approver, {APPROVER}: approver}}}}\n"
    );
    let chat = Chat::start(&slack_install(&fake.base_url(), fake.token()), &team, &[]).await;
    chat.slack_mention("Ev0GPU1", REQUESTER, CHANNEL, THREAD, "run --gpu nvidia-smi").await;
    let (card0, value) = eventually(LIMIT, "the approval card", || card(&fake), || thread_text(&fake)).await;
    let shown = card0.shown();
    assert!(
        shown.contains(
            "GPU use; approval by 2 of U0APPROVER1, U0APPROVER2, U0APPROVER, U0REQUESTER (not the requester)"
        ),
        "{shown}"
    );
    let job = chat.only_job().await;

    let private_to = |user: &'static str, n: usize| {
        let fake = &fake;
        move || {
            let mine: Vec<Message> =
                fake.ephemerals().into_iter().filter(|m| m.ephemeral_to.as_deref() == Some(user)).collect();
            (mine.len() >= n).then(|| mine[n - 1].clone())
        }
    };
    // The requester is on the list but may not approve their own job.
    let url = fake.response_url(CHANNEL, REQUESTER, Some(&card0.ts));
    chat.slack_click(&click(REQUESTER, "approve", &card0, &value, &url)).await;
    let r =
        eventually(LIMIT, "the requester's refusal", private_to(REQUESTER, 1), || format!("{:?}", fake.ephemerals()))
            .await;
    assert!(r.shown().contains("You requested job"), "{}", r.shown());

    // First approver: counted, acknowledged privately, still held; a repeat does not count twice.
    let url = fake.response_url(CHANNEL, A1, Some(&card0.ts));
    chat.slack_click(&click(A1, "approve", &card0, &value, &url)).await;
    let r = eventually(LIMIT, "the first approval's answer", private_to(A1, 1), || format!("{:?}", fake.ephemerals()))
        .await;
    assert!(r.shown().contains("Approval 1 of 2") && r.shown().contains("1 more needed"), "{}", r.shown());
    assert_eq!(chat.job_state(job).await, ("awaiting_approval".into(), Some("pending".into())));
    chat.slack_click(&click(A1, "approve", &card0, &value, &url)).await;
    let r = eventually(LIMIT, "the repeat's answer", private_to(A1, 2), || format!("{:?}", fake.ephemerals())).await;
    assert!(r.shown().contains("already voted"), "{}", r.shown());
    assert_eq!(chat.job_state(job).await, ("awaiting_approval".into(), Some("pending".into())));

    // Second approver: approved; the card says so and its buttons are gone.
    let url = fake.response_url(CHANNEL, A2, Some(&card0.ts));
    chat.slack_click(&click(A2, "approve", &card0, &value, &url)).await;
    let card1 = eventually(
        LIMIT,
        "the approved card",
        || fake.message(CHANNEL, &card0.ts).filter(|m| m.shown().contains("Approved by")),
        || thread_text(&fake),
    )
    .await;
    assert!(card1.shown().contains(&format!("Approved by <@{A2}>")), "{}", card1.shown());
    let (state, approval) = chat.job_state(job).await;
    assert_eq!(approval.as_deref(), Some("approved"));
    assert_ne!(state, "awaiting_approval");
    let votes: Vec<String> =
        sqlx::query_scalar("SELECT approver FROM approval_votes WHERE verdict = 'approve' ORDER BY at")
            .fetch_all(&chat.db.pool)
            .await
            .expect("votes");
    assert_eq!(votes, [A1, A2]);
    let audit = chat.audit().await;
    let refused: Vec<&str> = audit
        .iter()
        .filter(|(_, a, _)| a == "approval.refused")
        .map(|(_, _, d)| d["refused"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(refused, ["requester"]);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
