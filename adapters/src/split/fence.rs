//! Fenced code blocks as the splitter sees them, line by line.
//!
//! A fence line is a line whose first non-blank characters are at least three backticks and whose
//! rest (the info string) holds no backtick. Outside a block any fence line opens one; inside, a
//! fence line with an empty info string closes it. A trailing `\r` is ignored.

/// The longest language tag carried over to a reopened fence; longer or odd tags are dropped.
pub(super) const MAX_LANG: usize = 20;

/// The info string of a fence line, or `None` when `line` is not one.
pub(crate) fn fence_info(line: &str) -> Option<&str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start_matches([' ', '\t']);
    let ticks = trimmed.bytes().take_while(|&b| b == b'`').count();
    let info = trimmed.get(ticks..)?.trim();
    (ticks >= 3 && !info.contains('`')).then_some(info)
}

/// The language tag to reopen a block with: the info string's first word when it is short and
/// plain (letters, digits, `_+#.-`), else empty.
pub(crate) fn language(info: &str) -> String {
    let word = info.split_whitespace().next().unwrap_or_default();
    let plain =
        word.chars().count() <= MAX_LANG && word.chars().all(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(c));
    if plain { word.to_owned() } else { String::new() }
}

/// Scans `text` as a whole document (its last line counts even without a newline), starting
/// inside a block with language `open` if given; returns the block still open at the end.
pub(super) fn scan(text: &str, mut open: Option<String>) -> Option<String> {
    for line in text.split('\n') {
        match (fence_info(line), &open) {
            (Some(info), None) => open = Some(language(info)),
            (Some(""), Some(_)) => open = None,
            _ => {}
        }
    }
    open
}

/// The text that reopens a block with language `lang` at the start of a page.
pub(super) fn reopen_marker(lang: &str) -> String {
    format!("```{lang}\n")
}

/// The text that closes a block at the end of `page`.
pub(super) fn close_marker(page: &str) -> &'static str {
    if page.is_empty() || page.ends_with('\n') { "```" } else { "\n```" }
}

/// `text` with every run of three or more backticks broken by zero-width spaces, so it can sit
/// inside a code block (or a one-line status) without opening or closing one.
pub(crate) fn sanitize_fences(text: &str) -> String {
    if !text.contains("```") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            if run == 3 {
                out.push('\u{200B}');
                run = 1;
            }
        } else {
            run = 0;
        }
        out.push(c);
    }
    out
}
