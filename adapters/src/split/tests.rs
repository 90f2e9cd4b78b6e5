//! Property-style tests over many seeded random inputs (multibyte text, long lines, nested and
//! unbalanced fences), plus worked examples.

use super::fence::{reopen_marker, scan};
use super::*;
use crate::testing::{Rng, random_text};

fn random_budget(rng: &mut Rng) -> Budget {
    let limit = Budget::MIN_LIMIT + rng.below(400);
    match rng.below(3) {
        0 => Budget::chars(limit),
        1 => Budget::utf16(limit),
        _ => Budget::bytes(limit),
    }
    .unwrap()
}

fn check_split(input: &str, budget: &Budget) -> Vec<Page> {
    check_pages(input, budget, split(input, budget))
}

fn check_pages(input: &str, budget: &Budget, pages: Vec<Page>) -> Vec<Page> {
    let mut pos = 0;
    let mut joined = String::new();
    for page in &pages {
        assert!(budget.fits(page.text()), "page over {}: {:?}", budget.limit(), page.text());
        assert_eq!(page.source().start, pos);
        assert_eq!(page.original(), &input[page.source()]);
        assert!(!page.original().is_empty(), "empty page");
        assert_eq!(page.text(), format!("{}{}{}", page.added_prefix(), page.original(), page.added_suffix()));
        assert!(["", "```", "\n```"].contains(&page.added_suffix()));
        let prefix = page.added_prefix();
        assert!(prefix.is_empty() || (prefix.starts_with("```") && prefix.ends_with('\n')));
        assert_eq!(scan(page.text(), None), None, "unbalanced page {:?}", page.text());
        pos = page.source().end;
        joined.push_str(page.original());
    }
    assert_eq!(joined, input);
    pages
}

fn check_tail(input: &str, budget: &Budget) {
    let tail = tail(input, budget);
    let text = tail.text();
    assert!(budget.fits(text), "tail over {}: {text:?}", budget.limit());
    assert_eq!(scan(text, None), None, "unbalanced tail {text:?}");
    let shown = &input[tail.start()..];
    assert!(text.contains(shown));
    assert!(input.is_char_boundary(tail.start()));
    if tail.is_cut() {
        let note = format!("{}\n", omitted_note(tail.omitted_lines()));
        assert!(text.starts_with(&note), "{text:?}");
        let newlines = input[..tail.start()].matches('\n').count();
        assert_eq!(tail.omitted_lines(), newlines);
    } else {
        assert!(text.starts_with(input));
    }
    let ends = ["", "```", "\n```"].iter().any(|s| text.strip_suffix(s).is_some_and(|r| r.ends_with(shown)));
    assert!(ends, "tail does not end with the input: {text:?}");
}

#[test]
fn random_inputs_split_within_limits_and_round_trip() {
    for seed in 0..2_000 {
        let mut rng = Rng(seed);
        let budget = random_budget(&mut rng);
        let input = random_text(&mut rng, budget.limit());
        check_split(&input, &budget);
        check_tail(&input, &budget);
    }
}

#[test]
fn full_pages_do_not_change_when_input_grows() {
    for seed in 0..600 {
        let mut rng = Rng(seed ^ 0xABCD);
        let budget = random_budget(&mut rng);
        let head = random_text(&mut rng, budget.limit());
        let more = random_text(&mut rng, budget.limit());
        let before = split(&head, &budget);
        let after = split(&format!("{head}{more}"), &budget);
        let full = before.len().saturating_sub(1);
        assert_eq!(before[..full], after[..full], "seed {seed}");
    }
}

#[test]
fn random_breaks_keep_every_guarantee() {
    for seed in 0..1_500 {
        let mut rng = Rng(seed ^ 0x5EED);
        let budget = random_budget(&mut rng);
        let input = random_text(&mut rng, budget.limit() * 3);
        let mut breaks: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(input.len() + 8)).collect();
        breaks.sort_unstable();
        check_pages(&input, &budget, split_with_breaks(&input, &budget, &breaks));
    }
}

#[test]
fn a_full_page_keeps_what_it_showed_when_it_ends_at_a_break() {
    let budget = Budget::chars(200).unwrap();
    let line = |i: usize| format!("line {i:03} of the job's output\n");
    let shown: String = std::iter::once("```\n".to_owned()).chain((0..5).map(line)).collect();
    let live = format!("{shown}```");
    let first = check_split(&live, &budget);
    assert_eq!(first.len(), 1, "everything fits on the live page");
    // The live page showed the text up to `shown.len()`; then more output arrives, more than the page holds.
    let grown: String = format!("{shown}{}```", (5..12).map(line).collect::<String>());
    let greedy = check_split(&grown, &budget);
    assert_ne!(greedy[0].text(), first[0].text(), "filled as far as the budget allows");
    let kept = check_pages(&grown, &budget, split_with_breaks(&grown, &budget, &[shown.len()]));
    assert_eq!(kept[0].text(), first[0].text(), "the full page is what the live page showed");
    assert!(kept[1].original().starts_with("line 005"), "{:?}", kept[1].text());
    // While everything still fits on one page, a break is no reason to start another.
    let little = format!("{shown}{}```", line(5));
    assert_eq!(split_with_breaks(&little, &budget, &[shown.len()]).len(), 1);
    // A break that leaves its page less than three quarters full, would not fit, or cuts a character, is ignored.
    assert_eq!(split_with_breaks(&grown, &budget, &["```\nline".len()]), greedy);
    assert_eq!(split_with_breaks(&grown, &budget, &[grown.len() - 4]), greedy);
    let wide = format!("```\n{}```", "é".repeat(300));
    assert_eq!(split_with_breaks(&wide, &budget, &[5]), split(&wide, &budget));
}

#[test]
fn fences_are_closed_and_reopened_with_their_language() {
    let code: String = (0..40).map(|i| format!("line {i:02} of output\n")).collect();
    let input = format!("Result:\n```rust\n{code}```\ndone\n");
    let pages = check_split(&input, &Budget::chars(200).unwrap());
    assert!(pages.len() > 3);
    assert_eq!(pages[0].added_prefix(), "");
    assert_eq!(pages[0].added_suffix(), "```");
    assert!(pages[0].text().starts_with("Result:\n```rust\nline 00"));
    for page in &pages[1..pages.len() - 1] {
        assert_eq!(page.added_prefix(), reopen_marker("rust"));
    }
    assert!(pages.last().unwrap().text().ends_with("```\ndone\n"));
}

#[test]
fn long_lines_and_multibyte_text_break_between_chars() {
    let input = "🎉".repeat(1_000);
    for budget in [Budget::chars(100), Budget::utf16(100), Budget::bytes(101)] {
        let pages = check_split(&input, &budget.unwrap());
        assert!(pages.len() >= 10);
    }
    let pages = check_split("```\nabc", &Budget::chars(100).unwrap());
    assert_eq!(pages[0].text(), "```\nabc\n```", "an unclosed fence is closed");
    assert!(split("", &Budget::chars(100).unwrap()).is_empty());
}

#[test]
fn ten_thousand_lines_of_output() {
    let output: String = (0..10_000).map(|i| format!("test_{i} ... ok\n")).collect();
    let input = format!("```\n{output}```");
    let budget = Budget::utf16(4_000).unwrap();
    let pages = check_split(&input, &budget);
    assert!(pages.len() > 40);
    let tail = tail(&input, &budget);
    assert!(tail.text().starts_with("… "));
    assert!(tail.text().contains("earlier lines\n```\ntest_"));
    assert!(tail.text().ends_with("test_9999 ... ok\n```"));
    check_tail(&input, &budget);
}

#[test]
fn tail_of_short_text_is_the_text() {
    let budget = Budget::chars(100).unwrap();
    let t = tail("hello\n```sh\nls", &budget);
    assert!(!t.is_cut());
    assert_eq!(t.text(), "hello\n```sh\nls\n```");
    assert_eq!(omitted_note(1), "… 1 earlier line");
}

#[test]
fn budgets_measure_and_truncate() {
    assert!(Budget::chars(Budget::MIN_LIMIT - 1).is_none());
    let b = Budget::utf16(100).unwrap();
    assert_eq!(b.measure("a🎉"), 3);
    assert_eq!(Budget::bytes(100).unwrap().measure("a🎉"), 5);
    assert_eq!(b.truncate("abcdef", 4), "abc…");
    assert_eq!(b.truncate("abc", 4), "abc");
    assert_eq!(b.shrink(4).unwrap().limit(), 96);
    assert!(b.shrink(5).is_none());
    assert_eq!(sanitize_fences("a```b``````"), "a``\u{200B}`b``\u{200B}``\u{200B}``");
}
