//! Reading commands and bot mentions out of Telegram message text.

/// A leading bot command: `/name args` or `/name@bot args`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BotCommand<'a> {
    /// The command name, lowercased by the caller.
    pub(super) name: &'a str,
    /// The `@bot` suffix, if any.
    pub(super) target: Option<&'a str>,
    /// The trimmed rest of the text.
    pub(super) args: &'a str,
}

/// Reads a leading command. Names follow Telegram's rules (1–32 of `A-Za-z0-9_`); anything else
/// (`/usr/bin`, a lone `/`) is not a command.
pub(super) fn command(text: &str) -> Option<BotCommand<'_>> {
    let rest = text.trim_start().strip_prefix('/')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (token, args) = rest.split_at(end);
    let (name, target) = match token.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (token, None),
    };
    let valid = (1..=32).contains(&name.len()) && name.bytes().all(is_word_byte);
    valid.then(|| BotCommand { name, target, args: args.trim() })
}

/// Removes every `@bot` mention (case-insensitive, whole word) and reports whether there was
/// one. The result is trimmed.
pub(super) fn strip_mentions(text: &str, bot: &str) -> (String, bool) {
    if bot.is_empty() {
        return (text.trim().to_owned(), false);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut found = false;
    for (at, _) in text.match_indices('@') {
        if at < copied {
            continue;
        }
        let end = at + 1 + bot.len();
        let is_bot = text.get(at + 1..end).is_some_and(|c| c.eq_ignore_ascii_case(bot));
        let before = text.get(..at).and_then(|s| s.chars().next_back());
        let after = text.get(end..).and_then(|s| s.chars().next());
        if is_bot && !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char) {
            out.push_str(text.get(copied..at).unwrap_or_default());
            copied = end;
            found = true;
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    (out.trim().to_owned(), found)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            command("/cynode run echo hi"),
            Some(BotCommand { name: "cynode", target: None, args: "run echo hi" })
        );
        assert_eq!(
            command("/cynode@CyNodeBot  status "),
            Some(BotCommand { name: "cynode", target: Some("CyNodeBot"), args: "status" })
        );
        assert_eq!(command("/help"), Some(BotCommand { name: "help", target: None, args: "" }));
        assert_eq!(command("/run\necho hi").map(|c| c.args), Some("echo hi"));
        for not_a_command in ["", "/", "run", "/usr/bin/ls", "/é", "/@bot", &format!("/{}", "a".repeat(33))] {
            assert_eq!(command(not_a_command), None, "{not_a_command:?}");
        }
    }

    #[test]
    fn mentions() {
        assert_eq!(strip_mentions("@cynode_bot run ls", "cynode_bot"), ("run ls".into(), true));
        assert_eq!(strip_mentions("hey @CyNode_Bot, status", "cynode_bot"), ("hey , status".into(), true));
        assert_eq!(strip_mentions("ask @cynode_botx", "cynode_bot"), ("ask @cynode_botx".into(), false));
        assert_eq!(strip_mentions("mail a@cynode_bot", "cynode_bot"), ("mail a@cynode_bot".into(), false));
        assert_eq!(strip_mentions("@other hi", "cynode_bot"), ("@other hi".into(), false));
        assert_eq!(strip_mentions("é@cynode_bot é", "cynode_bot"), ("é é".into(), true));
        assert_eq!(strip_mentions("@@cynode_bot@", "cynode_bot"), ("@@".into(), true));
        assert_eq!(strip_mentions("@cynode_bot @cynode_bot", "cynode_bot"), (String::new(), true));
        assert_eq!(strip_mentions("@é", "cynode_bot"), ("@é".into(), false));
        assert_eq!(strip_mentions(" hi ", ""), ("hi".into(), false));
    }
}
