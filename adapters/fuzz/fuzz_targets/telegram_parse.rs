#![no_main]

#[path = "common.rs"]
mod common;

use cynode_adapters::telegram;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8])| {
    let (bot, body) = input;
    if let Ok(parsed) = telegram::parse(body, bot) {
        common::check_parsed(&parsed);
    }
    let _ = telegram::parse(body, "CyNodeBot");
});
