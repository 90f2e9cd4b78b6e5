//! Drafts of messages not posted yet (Telegram's `sendMessageDraft` in private chats).
//!
//! While a job runs, the last message of its stream is shown as a draft instead of being posted and edited: each
//! step re-sends the draft when what it shows changed, and again before it expires (the platform keeps a draft
//! visible for [`ThreadSink::draft_lifetime`](super::super::sink::ThreadSink::draft_lifetime)) when output
//! pauses. The message is posted for real, record-before-send like every post, when its page is full (the next
//! page exists) or the job ended; from then on it is an ordinary owned message.
//!
//! Drafts are not recorded: a draft is an ephemeral preview, and re-sending one is harmless (the same draft id
//! updates it in place), so a replica taking the stream over drafts again. When the platform refuses a draft
//! (not a private chat after all, an API server without drafts), the stream posts and edits instead.

use std::time::{Duration, Instant};

use cynode_adapters::{PlatformError, Reply};

use super::super::StreamSettings;
use super::super::Take;
use super::super::sink::{Op, Target, ThreadSink};
use super::{Run, Sent, fingerprint};

/// What this replica drafted for one stream.
#[derive(Debug, Default)]
pub(super) struct Drafts {
    /// The draft last sent.
    shown: Option<Drafted>,
    /// The platform refused a draft: this stream posts and edits from now on.
    refused: bool,
    /// Whether this step sent (or is about to send) a draft: the stream then steps at the sink's draft cadence,
    /// an idle one at the edit cadence.
    pub(super) live: bool,
}

/// A draft that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Drafted {
    /// The message it previews.
    index: usize,
    /// What it showed.
    fp: String,
    /// When it was sent.
    at: Instant,
}

/// Whether the draft of message `index` showing `fp` must be sent now: it changed, it previews another message,
/// or the one shown is `refresh` old (sent again before it expires).
fn due(shown: Option<&Drafted>, index: usize, fp: &str, now: Instant, refresh: Duration) -> bool {
    shown.is_none_or(|d| d.index != index || d.fp != fp || now.saturating_duration_since(d.at) >= refresh)
}

/// Whether the sink may draft in `target` under `settings` (drafts on, not refused for this stream).
pub(super) fn drafting(settings: &StreamSettings, sink: &dyn ThreadSink, target: &Target, drafts: &Drafts) -> bool {
    settings.drafts && !drafts.refused && sink.drafts(target)
}

impl Run<'_> {
    /// Whether slot `i` (the last one, not posted yet, the job still running) is shown as a draft: not an
    /// approval card and no buttons (such as a running agent turn's Stop), since drafts carry no buttons.
    pub(super) fn draftable(&self, slot: &Reply) -> bool {
        slot.approval.is_none()
            && slot.buttons.is_empty()
            && drafting(&self.worker.settings, self.sink, self.target, &self.drafts)
    }

    /// Shows slot `i` as a draft when it changed or is about to expire.
    pub(super) async fn draft(&mut self, i: usize, slot: &Reply) -> Result<Sent, sqlx::Error> {
        let fp = fingerprint(slot);
        let refresh = self.sink.draft_lifetime() * 2 / 3;
        if !due(self.drafts.shown.as_ref(), i, &fp, Instant::now(), refresh) {
            return Ok(Sent::Kept);
        }
        self.drafts.live = true;
        if let Some(wait) = self.take(Op::Draft).await? {
            return Ok(Sent::Wait(wait));
        }
        let at = Instant::now();
        match self.sink.draft(self.target, i, slot).await {
            Ok(()) => {
                self.drafts.shown = Some(Drafted { index: i, fp, at });
                Ok(Sent::Kept)
            }
            Err(e @ PlatformError::RateLimited { .. }) => self.outcome(Op::Draft, Err(e)).await,
            Err(PlatformError::Transient(_)) => Ok(Sent::Wait(self.worker.settings.cadence)),
            Err(e) => {
                tracing::info!(task.id = %self.c.task_id, reason = e.reason(), "draft refused; posting instead");
                self.drafts.refused = true;
                self.drafts.live = false;
                self.post(i, slot).await
            }
        }
    }
}

impl Run<'_> {
    /// While the full page `i` waits for its turn to be posted, shows `preview` (that page and the output after
    /// it) as the draft of message `i`, when the chat's draft budget allows it right now: the page's post keeps
    /// the stream's reservation, and a refused draft changes nothing (the page is posted as planned).
    pub(super) async fn preview(&mut self, i: usize, preview: &Reply) -> Result<(), sqlx::Error> {
        let fp = fingerprint(preview);
        let refresh = self.sink.draft_lifetime() * 2 / 3;
        if !due(self.drafts.shown.as_ref(), i, &fp, Instant::now(), refresh) {
            return Ok(());
        }
        // A draft token the last step reserved (and waited for) is spent here; else only one free right now.
        let prepaid = self.prepaid.take_if(|p| *p == Op::Draft).is_some();
        let buckets = self.sink.buckets(self.target, Op::Draft);
        if !prepaid && self.worker.budget.take(self.target.install_id, &buckets, Duration::ZERO).await? != Take::Now {
            return Ok(());
        }
        self.drafts.live = true;
        let at = Instant::now();
        match self.sink.draft(self.target, i, preview).await {
            Ok(()) => self.drafts.shown = Some(Drafted { index: i, fp, at }),
            Err(e @ PlatformError::RateLimited { .. }) => {
                self.outcome(Op::Draft, Err(e)).await?;
            }
            Err(e) => tracing::debug!(task.id = %self.c.task_id, reason = e.reason(), "preview draft refused"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_is_sent_when_it_changes_moves_on_or_is_about_to_expire() {
        let t0 = Instant::now();
        let refresh = Duration::from_secs(20);
        let shown = Drafted { index: 1, fp: "a".into(), at: t0 };
        assert!(due(None, 0, "a", t0, refresh), "nothing shown yet");
        assert!(!due(Some(&shown), 1, "a", t0 + Duration::from_secs(19), refresh), "unchanged and fresh");
        assert!(due(Some(&shown), 1, "b", t0, refresh), "changed");
        assert!(due(Some(&shown), 2, "a", t0, refresh), "the next message");
        assert!(due(Some(&shown), 1, "a", t0 + refresh, refresh), "refreshed before it expires");
    }
}
