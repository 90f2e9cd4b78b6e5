//! What a turn's message in the thread says: the tool calls so far (one line each), the model's text (streamed
//! while it is written, then the answer) and, at the end, a footer with steps and tokens.

/// A turn as the thread shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TurnText<'a> {
    /// One line per tool call, oldest first.
    pub(crate) calls: &'a [String],
    /// The model's text so far (the answer once the turn ended).
    pub(crate) text: &'a str,
    /// The step under way (1-based).
    pub(crate) step: i32,
    /// `None` while the turn runs; the footer once it ended.
    pub(crate) footer: Option<String>,
}

impl TurnText<'_> {
    /// The message text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for c in self.calls {
            out.push_str("🔧 ");
            out.push_str(c);
            out.push('\n');
        }
        if !self.calls.is_empty() {
            out.push('\n');
        }
        match (&self.footer, self.text.trim().is_empty()) {
            (None, true) if self.step > 1 => out.push_str(&format!("🤔 Thinking… (step {})", self.step)),
            (None, true) => out.push_str(super::begin::THINKING),
            (_, false) => out.push_str(self.text.trim()),
            (Some(_), true) => {}
        }
        if let Some(f) = &self.footer {
            out.push_str("\n\n");
            out.push_str(f);
        }
        out.trim().to_owned()
    }
}

/// The footer of a finished turn: steps and tokens, e.g. `_2 steps · 1,204 tokens in · 87 out_`.
pub(crate) fn footer(status: &str, steps: i32, tokens_in: i64, tokens_out: i64) -> String {
    let steps = if steps == 1 { "1 step".to_owned() } else { format!("{steps} steps") };
    let tokens = if tokens_in + tokens_out > 0 {
        format!(" · {} tokens in · {} out", thousands(tokens_in), thousands(tokens_out))
    } else {
        String::new()
    };
    format!("{status} · _{steps}{tokens}_")
}

fn thousands(n: i64) -> String {
    crate::usage::thousands(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_shows_calls_then_text_then_footer() {
        let calls = vec!["run_command `pytest -x` → exit 1".to_owned()];
        let live = TurnText { calls: &calls, text: "", step: 2, footer: None }.render();
        assert_eq!(live, "🔧 run_command `pytest -x` → exit 1\n\n🤔 Thinking… (step 2)");
        let done =
            TurnText { calls: &calls, text: "Two tests fail.", step: 2, footer: Some(footer("✅", 2, 1204, 87)) }
                .render();
        assert_eq!(
            done,
            "🔧 run_command `pytest -x` → exit 1\n\nTwo tests fail.\n\n✅ · _2 steps · 1,204 tokens in · 87 out_"
        );
        assert_eq!(TurnText { calls: &[], text: "", step: 1, footer: None }.render(), "🤔 Thinking…");
    }
}
