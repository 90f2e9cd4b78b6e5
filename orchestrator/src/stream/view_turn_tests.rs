//! The Stop button of a running agent turn's message: shown while the turn runs, gone once it ended, and
//! rendered within every platform's limits so a click comes back as `cancel <turn id>`.

use cynode_adapters::split::Budget;
use cynode_adapters::{Button, CANCEL_ACTION, Reply, discord, slack, telegram};
use uuid::Uuid;

use super::{STOP_LABEL, Snapshot, View, render};

fn turn_snap(state: &str, reply: &str, turn: Option<Uuid>) -> Snapshot {
    Snapshot {
        task_state: state.into(),
        reply: Some(reply.into()),
        requester: "U1".into(),
        requester_name: None,
        inbound_kind: Some("mention".into()),
        job: None,
        approval: None,
        turn,
    }
}

fn slots(v: View) -> (Vec<Reply>, bool) {
    match v {
        View::Thread { slots, done, .. } => (slots, done),
        View::Private(_) => panic!("expected a thread view"),
    }
}

#[test]
fn a_running_turns_message_carries_a_stop_button_that_is_cancel_with_the_turn_id() {
    let turn = Uuid::new_v4();
    let (slots, done) =
        slots(render(&turn_snap("running", "🤔 Thinking…", Some(turn)), None, &Budget::utf16(3000).unwrap(), 4));
    assert!(!done);
    assert_eq!(slots.len(), 1);
    let want =
        [Button::new(CANCEL_ACTION, &turn.to_string(), STOP_LABEL, cynode_adapters::ButtonStyle::Danger).unwrap()];
    assert_eq!(slots[0].buttons, want);
}

#[test]
fn only_the_last_page_of_a_long_turn_message_carries_the_button() {
    let turn = Uuid::new_v4();
    let long: String = (0..400).map(|i| format!("line {i} of the model's long answer\n")).collect();
    let (slots, _) = slots(render(&turn_snap("running", &long, Some(turn)), None, &Budget::utf16(3000).unwrap(), 8));
    assert!(slots.len() > 1, "{}", slots.len());
    let (last, rest) = slots.split_last().unwrap();
    assert!(rest.iter().all(|s| s.buttons.is_empty()));
    assert_eq!(last.buttons.len(), 1);
}

#[test]
fn the_final_message_and_other_tasks_have_no_button() {
    let turn = Uuid::new_v4();
    let budget = Budget::utf16(3000).unwrap();
    // The turn ended: the snapshot names no turn, and a final task state shows no button even if it did.
    for snap in [
        turn_snap("answered", "Two tests fail.\n\n✅ · _2 steps_", None),
        turn_snap("answered", "Two tests fail.", Some(turn)),
        turn_snap("running", "Job queued", None),
    ] {
        let (slots, _) = slots(render(&snap, None, &budget, 4));
        assert!(slots.iter().all(|s| s.buttons.is_empty()), "{snap:?}: {slots:?}");
    }
}

#[test]
fn every_platform_renders_the_stop_button_within_its_limits() {
    let turn = Uuid::new_v4();
    let (slots, _) =
        slots(render(&turn_snap("running", "🤔 Thinking…", Some(turn)), None, &Budget::utf16(3000).unwrap(), 4));
    let reply = &slots[0];
    let value = turn.to_string();

    let slack = slack::render_pages(reply);
    let blocks = serde_json::to_value(slack.last().unwrap().blocks.clone().expect("blocks with the button")).unwrap();
    let blocks = blocks.as_array().unwrap();
    let buttons: Vec<&serde_json::Value> =
        blocks.iter().filter(|b| b["type"] == "actions").flat_map(|b| b["elements"].as_array().unwrap()).collect();
    assert_eq!(buttons.len(), 1, "{blocks:?}");
    assert_eq!(buttons[0]["action_id"], CANCEL_ACTION);
    assert_eq!(buttons[0]["value"], value.as_str());
    assert_eq!(buttons[0]["style"], "danger");
    assert_eq!(buttons[0]["text"]["text"], STOP_LABEL);
    assert!(value.len() <= slack::render::BUTTON_VALUE_LIMIT && CANCEL_ACTION.len() <= slack::render::ID_LIMIT);

    let discord = discord::render_pages(reply);
    let rows = &discord.last().unwrap().components;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let custom_id = rows[0]["components"][0]["custom_id"].as_str().unwrap();
    assert_eq!(custom_id, format!("cancel:{value}"));
    assert!(custom_id.chars().count() <= discord::render::CUSTOM_ID_LIMIT);
    assert_eq!(rows[0]["components"][0]["style"], 4, "red");

    let telegram = telegram::render_pages(reply);
    let keyboard = telegram.last().unwrap().reply_markup.clone().expect("an inline keyboard");
    let data = &keyboard.inline_keyboard[0][0].callback_data;
    assert_eq!(data, &format!("cancel:{value}"));
    assert!(data.len() <= telegram::CALLBACK_DATA_LIMIT);
    assert_eq!(cynode_adapters::split_compact_action(data), (CANCEL_ACTION, value.as_str()));
}
