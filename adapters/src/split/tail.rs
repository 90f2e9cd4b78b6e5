//! The end of live output that fits one message, with a note of what was left out.

use super::Budget;
use super::fence::{MAX_LANG, close_marker, reopen_marker, scan};

/// The last part of a text that fits a [`Budget`], produced by [`tail()`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    text: String,
    start: usize,
    omitted_lines: usize,
}

impl Tail {
    /// What to show: when something was left out, a note `… N earlier lines`, a newline, the
    /// fence reopened if the shown part starts inside a code block, then the end of the input, then
    /// a closing fence when needed.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What to show, by value.
    #[must_use]
    pub fn into_text(self) -> String {
        self.text
    }

    /// The byte offset in the input where the shown part starts (0 when nothing was left out).
    #[must_use]
    pub const fn start(&self) -> usize {
        self.start
    }

    /// How many newlines lie before the shown part: the number of lines left out (the line the
    /// shown part starts in, when it starts mid-line, is not counted).
    #[must_use]
    pub const fn omitted_lines(&self) -> usize {
        self.omitted_lines
    }

    /// Whether anything was left out.
    #[must_use]
    pub const fn is_cut(&self) -> bool {
        self.start > 0
    }
}

/// The note that replaces the omitted start, without its newline.
#[must_use]
pub fn omitted_note(lines: usize) -> String {
    if lines == 1 { "… 1 earlier line".to_owned() } else { format!("… {lines} earlier lines") }
}

/// The end of `text` that fits `budget`, starting at a line boundary when the last line fits,
/// with fences balanced; the whole text (with an unclosed fence closed) when it all fits.
#[must_use]
pub fn tail(text: &str, budget: &Budget) -> Tail {
    let closed = |body: &str, open: Option<String>| match scan(body, open) {
        Some(_) => close_marker(body),
        None => "",
    };
    if budget.measure(text) <= budget.limit() {
        let whole = format!("{text}{}", closed(text, None));
        if budget.fits(&whole) {
            return Tail { text: whole, start: 0, omitted_lines: 0 };
        }
    }
    let total_newlines = text.bytes().filter(|&b| b == b'\n').count();
    let reserve = budget.measure(&omitted_note(total_newlines.max(2)))
        + 1
        + budget.measure(&reopen_marker(&"x".repeat(MAX_LANG)))
        + budget.measure("\n```");
    let avail = budget.limit().saturating_sub(reserve);
    let cut = first_fitting(text, budget, avail);
    let start = match text[cut..].find('\n') {
        _ if cut == 0 || text.as_bytes()[cut - 1] == b'\n' => cut,
        Some(nl) if cut + nl + 1 < text.len() => cut + nl + 1,
        _ => cut,
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let open = scan(&text[..line_start], None);
    let omitted_lines = text[..start].bytes().filter(|&b| b == b'\n').count();
    let prefix = open.as_deref().map(reopen_marker).unwrap_or_default();
    let body = &text[start..];
    let suffix = closed(body, open);
    Tail { text: format!("{}\n{prefix}{body}{suffix}", omitted_note(omitted_lines)), start, omitted_lines }
}

/// The smallest char boundary `i` with `measure(text[i..]) <= avail` (at most `text.len()`).
fn first_fitting(text: &str, budget: &Budget, avail: usize) -> usize {
    let mut used = 0;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        used += (budget.cost)(c);
        if used > avail {
            break;
        }
        start = i;
    }
    start
}
