//! The platform clients against the rule-enforcing fake servers of `cynode-tests`, over real
//! sockets: what the renderers produce is accepted, the fakes' state shows it, and every error
//! (429s, length limits, expired tokens, bad auth) maps to the right [`PlatformError`].
//!
//! [`PlatformError`]: cynode_adapters::PlatformError

mod discord;
mod slack;
mod telegram;

use cynode_adapters::code_block;

/// `reqwest` client for the fakes.
fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap()
}

fn url(s: &str) -> reqwest::Url {
    reqwest::Url::parse(s).unwrap()
}

/// A job's output of `lines` lines, wrapped in a code block.
fn output(lines: usize) -> String {
    let text: String = (0..lines).map(|i| format!("test_{i} ... ok <&> 🎉\n")).collect();
    code_block(&text, "text")
}
