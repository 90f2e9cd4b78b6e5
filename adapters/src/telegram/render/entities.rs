//! The neutral dialect as Telegram text plus entities: fenced blocks become `pre` entities (with
//! their language), inline `` `code` `` spans become `code` entities, and the markers disappear.

use serde::Serialize;

use crate::split::{fence_info, language_tag};

/// A `MessageEntity` of type `code` or `pre`. Offsets and lengths are in UTF-16 units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageEntity {
    /// `code` or `pre`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Start, in UTF-16 units.
    pub offset: usize,
    /// Length, in UTF-16 units (never 0).
    pub length: usize,
    /// The language of a `pre` block, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Converts neutral text to Telegram text and entities, trimming surrounding whitespace as
/// Telegram does. The text is never longer than the input.
#[must_use]
pub fn to_entities(markdown: &str) -> (String, Vec<MessageEntity>) {
    let mut out = Out::default();
    let mut open: Option<(usize, String)> = None;
    let mut lines = markdown.split('\n').peekable();
    while let Some(line) = lines.next() {
        match (&open, fence_info(line)) {
            (None, Some(info)) => {
                open = Some((out.units, language_tag(info)));
                continue;
            }
            (Some(_), Some("")) => {
                if let Some((start, lang)) = open.take() {
                    out.pre(start, lang);
                }
                continue;
            }
            _ => {}
        }
        if open.is_some() {
            out.push(line);
        } else {
            out.inline(line);
        }
        if lines.peek().is_some() {
            out.push("\n");
        }
    }
    if let Some((start, lang)) = open {
        out.pre(start, lang);
    }
    out.trimmed()
}

#[derive(Default)]
struct Out {
    text: String,
    units: usize,
    entities: Vec<MessageEntity>,
}

impl Out {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.units += units(s);
    }

    /// Closes a `pre` block that started at `start`; its final newline stays outside.
    fn pre(&mut self, start: usize, lang: String) {
        let end = self.units - usize::from(self.text.ends_with('\n') && self.units > start);
        if end > start {
            self.entities.push(MessageEntity {
                kind: "pre",
                offset: start,
                length: end - start,
                language: (!lang.is_empty()).then_some(lang),
            });
        }
    }

    /// A line outside code blocks: single-backtick spans become `code` entities.
    fn inline(&mut self, line: &str) {
        let mut rest = line;
        while let Some(open) = rest.find('`') {
            let after = &rest[open + 1..];
            let single = !after.starts_with('`') && (open == 0 || !rest[..open].ends_with('`'));
            let close = after.find('`').filter(|&c| c > 0 && !after[c + 1..].starts_with('`'));
            match close.filter(|_| single) {
                Some(close) => {
                    self.push(&rest[..open]);
                    let start = self.units;
                    self.push(&after[..close]);
                    self.entities.push(MessageEntity {
                        kind: "code",
                        offset: start,
                        length: self.units - start,
                        language: None,
                    });
                    rest = &after[close + 1..];
                }
                None => {
                    let skip = open + 1 + after.len() - after.trim_start_matches('`').len();
                    self.push(&rest[..skip]);
                    rest = &rest[skip..];
                }
            }
        }
        self.push(rest);
    }

    fn trimmed(self) -> (String, Vec<MessageEntity>) {
        let text = self.text.trim_end();
        let end = units(text);
        let lead = units(&text[..text.len() - text.trim_start().len()]);
        let entities = self
            .entities
            .into_iter()
            .filter_map(|mut e| {
                let stop = (e.offset + e.length).min(end);
                let start = e.offset.max(lead);
                (stop > start).then(|| {
                    e.offset = start - lead;
                    e.length = stop - start;
                    e
                })
            })
            .collect();
        (text.trim_start().to_owned(), entities)
    }
}
