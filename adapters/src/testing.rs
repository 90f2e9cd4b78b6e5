//! Helpers for property-style unit tests.

/// A small deterministic generator (SplitMix64), so failures reproduce from the printed seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &["a", "word ", "x", " ", "é", "日本", "🎉", "\t", "`", "``", "```", "&", "<", "z\r", "ß"];
const LINES: &[&str] = &[
    "```",
    "```rust",
    "```py extra words",
    "  ```",
    "````",
    "```a`b",
    "```this-is-a-very-long-language-tag",
    "",
    "`inline` code",
    "``` ",
    "~~~",
    "\r",
];

/// Random text in the neutral dialect: multibyte text, long lines, nested and unbalanced fences.
pub(crate) fn random_text(rng: &mut Rng, max_line: usize) -> String {
    let lines = rng.below(60);
    let mut out = String::new();
    for i in 0..lines {
        if i > 0 {
            out.push('\n');
        }
        if rng.below(3) == 0 {
            out.push_str(rng.pick(LINES));
        } else {
            let len = match rng.below(10) {
                0 => rng.below(max_line * 3 + 1),
                _ => rng.below(80),
            };
            for _ in 0..len {
                out.push_str(rng.pick(PIECES));
            }
        }
    }
    if rng.below(2) == 0 {
        out.push('\n');
    }
    out
}

/// A sample approval card for job `3f2a9c1d`.
pub(crate) fn card(state: crate::ApprovalState) -> crate::ApprovalCard {
    crate::ApprovalCard {
        job: "3f2a9c1d".into(),
        command: "pytest -x tests/ && echo '<!channel> & done'".into(),
        requester: crate::Actor { id: "U0ADA".into(), name: Some("ada".into()) },
        template: Some("python".into()),
        access: crate::Access { network: true, gpu: false },
        reason: Some("network access needs an approver".into()),
        state,
    }
}

/// A random reply: random status, body and footer lengths, sometimes a card or buttons.
pub(crate) fn random_reply(rng: &mut Rng) -> crate::Reply {
    let line = |rng: &mut Rng, max: usize| {
        let n = rng.below(max);
        (0..n).map(|_| rng.pick(&["a", "é", "🎉", "&", "<", "`", " "])).collect::<String>()
    };
    let mut reply = crate::Reply::new(random_text(rng, 5_000));
    if rng.below(2) == 0 {
        reply.status = Some(line(rng, 800));
    }
    if rng.below(2) == 0 {
        reply.footer = Some(line(rng, 800));
    }
    if rng.below(3) == 0 {
        let mut c = card(crate::ApprovalState::Pending { expires_at: Some(1_700_000_000) });
        c.command = line(rng, 3_000);
        c.reason = Some(line(rng, 1_000));
        reply.approval = Some(c);
    }
    for i in 0..rng.below(14) {
        let action = ["cancel", "rerun", "logs"][i % 3];
        if let Ok(b) =
            crate::Button::new(action, &format!("job-{}", i % 5), &line(rng, 120), crate::ButtonStyle::Neutral)
        {
            reply.buttons.push(b);
        }
    }
    reply
}
