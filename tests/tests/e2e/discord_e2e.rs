//! Discord end to end with real processes: a signed `/cynode run …` in a thread is answered through the deferred
//! interaction response and streamed live within Discord's limits; a held job shows an approval card with
//! components, a non-approver's click gets an ephemeral refusal, the approver's click runs the job in Docker and
//! the card says who approved.

use std::time::Duration;

use cynode_tests::fakes::FakeDiscord;
use cynode_tests::fakes::discord::{CONTENT_LIMIT, Message};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use crate::chat::{Chat, approval_policy, eventually};

/// RFC 8032 §7.1 TEST 1: the seed, and its public key in the install.
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const GUILD_CHANNEL: &str = "1200000000000000001";
const THREAD: &str = "1200000000000000002";
const APPROVER: &str = "880000000000000001";
const REQUESTER: &str = "880000000000000002";
const LIMIT: Duration = Duration::from_secs(90);

fn install(fake: &FakeDiscord) -> String {
    format!(
        "  - {{platform: discord, name: acme-discord, application_id: '{}', public_key: {PUBLIC_KEY}, \
         bot_token: {}, api_base_url: '{}'}}\n",
        fake.application_id(),
        fake.bot_token(),
        fake.base_url()
    )
}

/// Delivers a signed interaction and returns the gateway's answer.
async fn deliver(chat: &Chat, body: &Value) -> Value {
    let body = body.to_string();
    let key = SigningKey::from_bytes(&hex::decode(SEED).expect("hex").try_into().expect("32 bytes"));
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes());
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("x-signature-ed25519", signature),
        ("x-signature-timestamp", ts),
    ];
    let (status, text) = chat.deliver("/discord/interactions", &headers, body).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("a JSON answer")
}

fn interaction(fake: &FakeDiscord, id: u64, kind: u8, token: &str, user: &str) -> Value {
    json!({
        "type": kind, "id": (1_250_000_000_000_000_000_u64 + id).to_string(), "application_id": fake.application_id(),
        "token": token, "version": 1, "channel_id": THREAD,
        "channel": { "id": THREAD, "type": 11, "parent_id": GUILD_CHANNEL },
        "guild_id": "1100000000000000001",
        "member": { "user": { "id": user, "username": format!("user{}", &user[user.len() - 2..]) } },
    })
}

/// `/cynode run <command>` by `user` in the thread; returns the interaction token.
async fn slash_run(chat: &Chat, fake: &FakeDiscord, id: u64, user: &str, command: &str) -> String {
    let token = fake.interaction(THREAD);
    let mut body = interaction(fake, id, 2, &token, user);
    body["data"] = json!({ "id": "1190000000000000001", "name": "cynode", "type": 1, "options": [
        { "name": "run", "type": 1, "options": [{ "name": "command", "type": 3, "value": command }] }
    ]});
    assert_eq!(deliver(chat, &body).await, json!({"type": 5}), "deferred: the user sees 'thinking…'");
    token
}

/// A click on the button `custom_id` of message `message_id` by `user`; returns the interaction token.
async fn click(chat: &Chat, fake: &FakeDiscord, id: u64, user: &str, message_id: &str, custom_id: &str) -> String {
    let token = fake.component_interaction(THREAD, message_id);
    let mut body = interaction(fake, id, 3, &token, user);
    body["message"] = json!({ "id": message_id, "channel_id": THREAD });
    body["data"] = json!({ "custom_id": custom_id, "component_type": 2 });
    assert_eq!(deliver(chat, &body).await, json!({"type": 6}), "a deferred update");
    token
}

fn custom_ids(m: &Message) -> Vec<String> {
    let mut ids = Vec::new();
    for row in m.components.as_array().into_iter().flatten() {
        for c in row["components"].as_array().into_iter().flatten() {
            ids.extend(c["custom_id"].as_str().map(str::to_owned));
        }
    }
    ids
}

fn thread_text(fake: &FakeDiscord) -> String {
    fake.messages_in(THREAD).iter().map(|m| m.content.clone()).collect::<Vec<_>>().join("\n---\n")
}

#[tokio::test]
async fn a_discord_approval_is_refused_to_others_and_runs_after_the_approvers_click() {
    let fake = FakeDiscord::start().await;
    let chat = Chat::start(&install(&fake), &approval_policy(&[APPROVER]), &[]).await;
    let first = slash_run(&chat, &fake, 1, REQUESTER, "echo from-discord; echo second").await;
    let (card, approve) = eventually(
        LIMIT,
        "the approval card",
        || {
            let m = fake.original(&first).filter(|m| !m.deferred)?;
            let id = custom_ids(&m).into_iter().find(|c| c.starts_with("approve:"))?;
            Some((m, id))
        },
        || thread_text(&fake),
    )
    .await;
    assert!(card.content.contains("Approval needed") && card.content.contains("echo from-discord"), "{}", card.content);
    assert!(card.content.contains(&format!("<@{REQUESTER}>")), "names the requester: {}", card.content);
    assert!(custom_ids(&card).iter().any(|c| c.starts_with("deny:")), "a deny button too");
    let job = chat.only_job().await;

    let refused = click(&chat, &fake, 2, REQUESTER, &card.id, &approve).await;
    let notice = eventually(
        LIMIT,
        "the ephemeral refusal",
        || fake.ephemerals_of(&refused).pop(),
        || format!("{:?}", fake.ephemerals()),
    )
    .await;
    assert!(notice.content.contains("not an approver"), "{}", notice.content);
    assert_eq!(chat.job_state(job).await, ("awaiting_approval".into(), Some("pending".into())), "still held");

    let approved = click(&chat, &fake, 3, APPROVER, &card.id, &approve).await;
    let notice = eventually(
        LIMIT,
        "the approver's ephemeral notice",
        || fake.ephemerals_of(&approved).pop(),
        || format!("{:?}", fake.ephemerals()),
    )
    .await;
    assert!(
        notice.content.contains(&format!("approved by <@{APPROVER}>")),
        "a mention, not a raw id: {}",
        notice.content
    );
    let all = eventually(
        LIMIT,
        "the final status and the output",
        || Some(thread_text(&fake)).filter(|t| t.contains("Succeeded") && t.contains("from-discord\nsecond")),
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    assert!(all.contains("from-discord\nsecond"), "output in the thread:\n{all}");
    let card = fake.message(&card.id).expect("card");
    assert!(card.content.contains(&format!("Approved by <@{APPROVER}>")), "{}", card.content);
    assert!(custom_ids(&card).is_empty(), "buttons removed once decided: {:?}", card.components);
    assert_eq!(chat.job_state(job).await, ("succeeded".into(), Some("approved".into())));
    assert_eq!(fake.count_429(), 0);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn ten_thousand_lines_stream_into_a_discord_thread_without_a_429() {
    let fake = FakeDiscord::start().await;
    let chat = Chat::start(&install(&fake), "", &[]).await;
    let token = slash_run(&chat, &fake, 1, REQUESTER, "seq 1 10000").await;
    let first =
        eventually(LIMIT, "the first reply", || fake.original(&token).filter(|m| !m.deferred), || thread_text(&fake))
            .await;
    let all = eventually(
        LIMIT,
        "the final message",
        || Some(thread_text(&fake)).filter(|t| t.contains("Succeeded")),
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    let messages = fake.messages_in(THREAD);
    assert_eq!(messages[0].id, first.id, "the first reply is the interaction's response, edited in place");
    assert!(messages.len() > 1, "rolled over into more messages");
    assert!(messages.iter().all(|m| m.content.chars().count() <= CONTENT_LIMIT));
    assert!(all.contains("\n1\n2\n3\n"), "the start of the output:\n{all}");
    assert!(all.contains("\n10000\n"), "the end of the output");
    let job = chat.only_job().await;
    let last = &messages.last().expect("a message").content;
    let short = &job.simple().to_string()[..8];
    assert!(last.contains(&format!("cynode logs {short}")), "where the full output is: {last}");
    assert_eq!(fake.count_429(), 0, "zero 429s");
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
