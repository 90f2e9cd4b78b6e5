//! Composes a reply's status, body and footer into page texts within a budget; the platform
//! renderers escape and wrap the result.

use super::Reply;
use crate::split::{self, Budget, Page, sanitize_fences};

/// The longest status or footer line, in budget units (less for small budgets).
const MAX_DECOR: usize = 300;

/// The status and footer as shown, and the budget left for the body on every page.
struct Decor {
    header: Option<String>,
    footer: Option<String>,
    body: Budget,
}

fn decor(reply: &Reply, budget: &Budget) -> Decor {
    let max = MAX_DECOR.min(budget.limit().saturating_sub(Budget::MIN_LIMIT) / 2);
    let line = |text: &Option<String>| {
        let text = text.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
        (max >= 2).then(|| budget.truncate(&sanitize_fences(text), max - 1))
    };
    let header = line(&reply.status);
    let footer = line(&reply.footer);
    let used = |t: &Option<String>| t.as_deref().map_or(0, |t| budget.measure(t) + 1);
    let body = budget.shrink(used(&header) + used(&footer)).unwrap_or(*budget);
    Decor { header, footer, body }
}

fn join(parts: &[Option<&str>]) -> String {
    let parts: Vec<&str> = parts.iter().flatten().copied().filter(|p| !p.is_empty()).collect();
    parts.join("\n")
}

/// Every page of the reply: the status on the first, the footer on the last. Never empty (a
/// reply with nothing to show gives one empty page).
pub(crate) fn pages(reply: &Reply, budget: &Budget) -> Vec<String> {
    let d = decor(reply, budget);
    let mut pages: Vec<String> = split::split(&reply.body, &d.body).into_iter().map(Page::into_text).collect();
    if pages.is_empty() {
        pages.push(String::new());
    }
    let last = pages.len() - 1;
    for (i, page) in pages.iter_mut().enumerate() {
        let header = if i == 0 { d.header.as_deref() } else { None };
        let footer = if i == last { d.footer.as_deref() } else { None };
        let body = page.trim_end_matches('\n');
        *page = join(&[header, Some(body), footer]);
    }
    pages
}

/// One page: the status, the end of the body that fits, the footer.
pub(crate) fn tail(reply: &Reply, budget: &Budget) -> String {
    let d = decor(reply, budget);
    let tail = split::tail(&reply.body, &d.body);
    let body = tail.text().trim_end_matches('\n');
    join(&[d.header.as_deref(), Some(body), d.footer.as_deref()])
}

/// Puts `extra` (an approval card's text) on the last page when both fit `budget` together,
/// else on a page of its own (replacing a lone empty page).
pub(crate) fn append(pages: &mut Vec<String>, extra: String, budget: &Budget) {
    match pages.last_mut() {
        Some(last) if last.is_empty() => *last = extra,
        Some(last) if budget.fits(&format!("{last}\n{extra}")) => {
            last.push('\n');
            last.push_str(&extra);
        }
        _ => pages.push(extra),
    }
}
