//! Code-fence-aware splitting of long text into pages that each fit a platform's length limit,
//! and a "tail" view of live output.
//!
//! The text is the platform-neutral Markdown-ish dialect of [`Reply`](crate::Reply): plain lines,
//! inline `` `code` `` spans and fenced code blocks (a line starting with ```` ``` ````, optionally
//! followed by a language tag; a bare ```` ``` ```` line closes the block).
//!
//! Guarantees of [`split`], for every input and every [`Budget`]:
//!
//! - every page measures at most the budget's limit;
//! - pages break only between characters, never inside a UTF-8 sequence, and preferably after a
//!   newline (then after a space, then anywhere);
//! - a page that ends inside a code block gets a closing fence, and the next page reopens it with
//!   the same language tag, so every page renders on its own with balanced fences;
//! - removing those added markers ([`Page::added_prefix`], [`Page::added_suffix`]) and joining
//!   the pages gives back the input exactly;
//! - once a page is full, appending more input never changes it (only the last page grows), so a
//!   streamer can keep editing the last message and post a new one when it fills up.

mod fence;
mod tail;
#[cfg(test)]
mod tests;

use std::ops::Range;

pub use tail::{Tail, omitted_note, tail};

use fence::{close_marker, reopen_marker, scan};
pub(crate) use fence::{fence_info, language as language_tag, sanitize_fences};

/// A length limit and the way a platform counts length.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    limit: usize,
    cost: fn(char) -> usize,
}

impl Budget {
    /// The smallest limit a budget accepts: enough for a reopened fence, a closing fence and
    /// some text on every page.
    pub const MIN_LIMIT: usize = 96;

    /// Counts Unicode scalar values (Rust `char`s). `None` below [`Budget::MIN_LIMIT`].
    #[must_use]
    pub fn chars(limit: usize) -> Option<Self> {
        Self::with_cost(limit, |_| 1)
    }

    /// Counts UTF-16 code units, as JavaScript and Telegram do; never less than [`Budget::chars`],
    /// so it is also a safe choice when a platform does not say how it counts. `None` below
    /// [`Budget::MIN_LIMIT`].
    #[must_use]
    pub fn utf16(limit: usize) -> Option<Self> {
        Self::with_cost(limit, char::len_utf16)
    }

    /// Counts UTF-8 bytes. `None` below [`Budget::MIN_LIMIT`].
    #[must_use]
    pub fn bytes(limit: usize) -> Option<Self> {
        Self::with_cost(limit, char::len_utf8)
    }

    /// A budget fixed at compile time (`const`), with a per-character cost between 1 and 8
    /// (for example the length a character takes once escaped).
    ///
    /// # Panics
    ///
    /// Below [`Budget::MIN_LIMIT`]; in a `const` item that is a compile error.
    pub(crate) const fn fixed(limit: usize, cost: fn(char) -> usize) -> Self {
        assert!(limit >= Self::MIN_LIMIT, "budget below the minimum");
        Self { limit, cost }
    }

    /// A budget with a per-character cost between 1 and 8.
    pub(crate) fn with_cost(limit: usize, cost: fn(char) -> usize) -> Option<Self> {
        (limit >= Self::MIN_LIMIT).then_some(Self { limit, cost })
    }

    /// The same way of counting with a smaller limit, or `None` if that falls below
    /// [`Budget::MIN_LIMIT`].
    #[must_use]
    pub fn shrink(&self, by: usize) -> Option<Self> {
        Self::with_cost(self.limit.checked_sub(by)?, self.cost)
    }

    /// The limit.
    #[must_use]
    pub const fn limit(&self) -> usize {
        self.limit
    }

    /// The length of `text` as this budget counts it.
    #[must_use]
    pub fn measure(&self, text: &str) -> usize {
        text.chars().map(self.cost).sum()
    }

    /// Whether `text` fits.
    #[must_use]
    pub fn fits(&self, text: &str) -> bool {
        self.measure(text) <= self.limit
    }

    /// `text` cut to at most `max` units on a character boundary, with `…` appended when cut.
    #[must_use]
    pub fn truncate(&self, text: &str, max: usize) -> String {
        if self.measure(text) <= max {
            return text.to_owned();
        }
        let room = max.saturating_sub(self.measure("…"));
        let mut used = 0;
        let mut end = 0;
        for (i, c) in text.char_indices() {
            used += (self.cost)(c);
            if used > room {
                break;
            }
            end = i + c.len_utf8();
        }
        format!("{}…", &text[..end])
    }
}

/// One page produced by [`split`]: `added_prefix + original + added_suffix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    text: String,
    source: Range<usize>,
    prefix_len: usize,
    suffix_len: usize,
}

impl Page {
    /// The page as it should be shown.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The page as it should be shown, by value.
    #[must_use]
    pub fn into_text(self) -> String {
        self.text
    }

    /// The byte range of the input this page shows.
    #[must_use]
    pub fn source(&self) -> Range<usize> {
        self.source.clone()
    }

    /// The fence reopened at the start (```` ```lang ```` and a newline), or `""`.
    #[must_use]
    pub fn added_prefix(&self) -> &str {
        &self.text[..self.prefix_len]
    }

    /// The fence closed at the end (```` ``` ````, after a newline when needed), or `""`.
    #[must_use]
    pub fn added_suffix(&self) -> &str {
        &self.text[self.text.len() - self.suffix_len..]
    }

    /// The part of the input on this page, without added markers.
    #[must_use]
    pub fn original(&self) -> &str {
        &self.text[self.prefix_len..self.text.len() - self.suffix_len]
    }
}

/// Splits `text` into pages that each fit `budget` (see the module docs for the guarantees).
/// An empty input gives no pages.
#[must_use]
pub fn split(text: &str, budget: &Budget) -> Vec<Page> {
    split_with_breaks(text, budget, &[])
}

/// [`split`], preferring the byte offsets in `breaks` (ascending) as page ends: where the rest of
/// the text does not fit on the current page, the page ends at the first break after its start
/// if that page fits, instead of as late as the budget allows. A streamer passes where its pages
/// ended when last shown, so a page that fills up keeps exactly what it showed and the new text
/// starts the next page: one message to post, none to edit. A break is kept only where its page
/// is at least three quarters full (a page shown when little output had arrived does not stay
/// nearly empty); breaks that are not character boundaries, lie outside the text or would not
/// fit are ignored. The guarantees of [`split`] hold for every input.
#[must_use]
pub fn split_with_breaks(text: &str, budget: &Budget, breaks: &[usize]) -> Vec<Page> {
    let suffix_reserve = budget.measure("\n```");
    let mut pages = Vec::new();
    let mut pos = 0;
    let mut open: Option<String> = None;
    while pos < text.len() {
        let prefix = open.as_deref().map(reopen_marker).unwrap_or_default();
        let hard = budget.limit - budget.measure(&prefix);
        let soft = hard - suffix_reserve;
        let window = Window::scan(&text[pos..], budget, soft, hard);
        if window.reaches_end {
            let page = make_page(text, pos..text.len(), &prefix, open.as_deref());
            if budget.fits(&page.0.text) {
                pages.push(page.0);
                break;
            }
        }
        let kept = breaks
            .iter()
            .find(|b| **b > pos)
            .filter(|b| **b < text.len() && text.is_char_boundary(**b))
            .map(|b| make_page(text, pos..*b, &prefix, open.as_deref()))
            .filter(|(page, _)| budget.fits(&page.text) && budget.measure(&page.text) >= budget.limit / 4 * 3);
        if let Some((page, end_open)) = kept {
            pos = page.source.end;
            pages.push(page);
            open = end_open;
            continue;
        }
        let end = pos + window.break_at(soft, &text[pos..]);
        let (page, end_open) = make_page(text, pos..end, &prefix, open.as_deref());
        pages.push(page);
        open = end_open;
        pos = end;
    }
    pages
}

/// Builds a page from `text[range]` after `prefix`, closing a fence left open; returns it with
/// the language of that fence (the next page reopens it).
fn make_page(text: &str, range: Range<usize>, prefix: &str, open: Option<&str>) -> (Page, Option<String>) {
    let slice = &text[range.clone()];
    let end_open = scan(slice, open.map(str::to_owned));
    let suffix = if end_open.is_some() { close_marker(slice) } else { "" };
    let page = Page {
        text: format!("{prefix}{slice}{suffix}"),
        source: range,
        prefix_len: prefix.len(),
        suffix_len: suffix.len(),
    };
    (page, end_open)
}

/// Candidate break points in the text after the current position.
struct Window {
    /// The whole rest fits in the hard budget (without a closing fence).
    reaches_end: bool,
    /// Byte offset just past the last character that fits the soft budget.
    soft_end: usize,
    /// Byte offset just past the last newline inside the soft budget.
    newline: Option<usize>,
    /// Byte offset just past the last space inside the soft budget, and the cost up to it.
    space: Option<(usize, usize)>,
}

impl Window {
    fn scan(rest: &str, budget: &Budget, soft: usize, hard: usize) -> Self {
        let mut window = Self { reaches_end: true, soft_end: 0, newline: None, space: None };
        let mut used = 0;
        for (i, c) in rest.char_indices() {
            used += (budget.cost)(c);
            if used > hard {
                window.reaches_end = false;
                break;
            }
            if used <= soft {
                let after = i + c.len_utf8();
                window.soft_end = after;
                match c {
                    '\n' => window.newline = Some(after),
                    ' ' | '\t' => window.space = Some((after, used)),
                    _ => {}
                }
            }
        }
        window
    }

    /// Where to end the page: after the last newline, else after a space in the last quarter,
    /// else as far as fits (at least one character, so splitting always progresses).
    fn break_at(&self, soft: usize, rest: &str) -> usize {
        let end = match (self.newline, self.space) {
            (Some(nl), _) => nl,
            (None, Some((sp, used))) if used >= soft / 4 * 3 => sp,
            _ => self.soft_end,
        };
        if end == 0 { rest.chars().next().map_or(rest.len(), char::len_utf8) } else { end }
    }
}
