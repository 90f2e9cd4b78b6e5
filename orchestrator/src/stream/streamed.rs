//! Streamed output messages (Slack's `chat.startStream` → `chat.appendStream` → `chat.stopStream`).
//!
//! Only the last output page of a running job is streamed: it is the only one that grows. A streamed message's
//! entry in the record's `pages` is a mark `stream:<len>:<fingerprint>`: how many bytes of the page's text (its
//! code block without the closing fence) were appended, and a fingerprint of exactly those bytes. Each step
//! appends only what follows them, so a replica that takes the stream over continues where the record says.
//!
//! Record before send: before an append the mark is saved as pending (`stream?:…`). A replica that finds a
//! pending mark cannot know whether that append landed, so it never repeats it: it stops the stream and
//! replaces the message with `chat.update` (no duplicated text, nothing missing). The same happens whenever the
//! page stops growing by appending (a retried attempt, the tail view past the message cap). A page that is full
//! (the next page exists) or whose job ended is stopped with the rest of its text and is then a plain message.
//!
//! Falls back to `chat.postMessage` when the start budget (Tier 2) has no token right now or Slack refuses the
//! start (not allowed, missing recipient, unknown method…).

use cynode_adapters::{PlatformError, Reply};
use sha2::{Digest, Sha256};

use super::super::budget::Take;
use super::super::sink::{Op, Owned, StreamOp, Target, ThreadSink, Via};
use super::{Run, Sent, set};

const FENCE: &str = "```";

/// Whether slot `i` can be streamed: an output page (not the header, not a card) of a sink that streams.
pub(super) fn streamable(sink: &dyn ThreadSink, target: &Target, i: usize, slot: &Reply) -> bool {
    i > 0
        && sink.streams(target)
        && slot.status.is_none()
        && slot.footer.is_none()
        && slot.approval.is_none()
        && open_text(slot).is_some_and(|t| !t.is_empty())
}

/// Whether a `pages` entry is a streamed message's mark (not a posted message's fingerprint).
pub(super) fn is_mark(entry: &str) -> bool {
    Mark::parse(entry).is_some()
}

/// A page's text as streamed: its code block without the closing fence (appended when the stream stops).
fn open_text(slot: &Reply) -> Option<&str> {
    slot.body.starts_with(FENCE).then(|| slot.body.strip_suffix(FENCE)).flatten()
}

/// A streamed message's progress, kept in the record's `pages`.
#[derive(Debug, PartialEq, Eq)]
struct Mark {
    len: usize,
    fp: String,
    pending: bool,
}

impl Mark {
    fn of(text: &str, pending: bool) -> Self {
        Self { len: text.len(), fp: hex::encode(&Sha256::digest(text.as_bytes())[..12]), pending }
    }

    fn parse(s: &str) -> Option<Self> {
        let (pending, rest) = match s.strip_prefix("stream?:") {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix("stream:")?),
        };
        let (len, fp) = rest.split_once(':')?;
        Some(Self { len: len.parse().ok()?, fp: fp.to_owned(), pending })
    }

    fn encode(&self) -> String {
        format!("stream{}:{}:{}", if self.pending { "?" } else { "" }, self.len, self.fp)
    }

    /// The part of `text` after this mark, when `text` extends what was streamed.
    fn rest<'t>(&self, text: &'t str) -> Option<&'t str> {
        let streamed = text.get(..self.len)?;
        (Self::of(streamed, false).fp == self.fp).then(|| &text[self.len..])
    }
}

impl Run<'_> {
    /// Starts streaming slot `i`, or posts it when a stream cannot start now.
    pub(super) async fn start(&mut self, i: usize, slot: &Reply) -> Result<Sent, sqlx::Error> {
        let text = open_text(slot).unwrap_or_default();
        let buckets = self.sink.buckets(self.target, Op::Stream(StreamOp::Start));
        if !self.holds().await? {
            return Ok(Sent::Wait(std::time::Duration::from_secs(3600)));
        }
        // Tier 2 is scarce: no waiting for it, the existing path serves this page instead.
        if self.worker.budget.take(self.target.install_id, &buckets, std::time::Duration::ZERO).await? != Take::Now {
            return self.post(i, slot).await;
        }
        self.p.pending_post = i32::try_from(i).ok();
        if !self.save("").await? {
            return Ok(Sent::Wait(std::time::Duration::from_secs(3600)));
        }
        let result = self.sink.start_stream(self.target, i, text).await;
        self.p.pending_post = None;
        match result {
            Ok(posted) => {
                self.p.messages.push(posted.message);
                set(&mut self.p.pages, i, Mark::of(text, false).encode());
                Ok(Sent::Kept)
            }
            Err(PlatformError::Transient(_)) => {
                // The stream may have started: never start it again.
                self.p.messages.push(Owned { channel: String::new(), id: String::new(), via: Via::Lost });
                self.p.pages.push(String::new());
                Ok(Sent::Wait(self.worker.settings.cadence))
            }
            Err(e) => {
                if let PlatformError::RateLimited { retry_after, .. } = e {
                    self.worker.budget.block(self.target.install_id, &buckets, retry_after).await?;
                }
                tracing::info!(task.id = %self.c.task_id, reason = e.reason(), "stream not started; posting instead");
                self.post(i, slot).await
            }
        }
    }

    /// Brings the streamed message `m` (slot `i`) up to date: appends what is new, or stops it when `last` (the
    /// page is complete or the job ended), or replaces it when its text no longer grows by appending.
    pub(super) async fn streamed(
        &mut self,
        i: usize,
        m: &Owned,
        slot: &Reply,
        last: bool,
    ) -> Result<Sent, sqlx::Error> {
        let mark = self.p.pages.get(i).and_then(|s| Mark::parse(s)).filter(|k| !k.pending);
        let rest = mark.as_ref().and_then(|k| open_text(slot).and_then(|t| k.rest(t)));
        let (Some(mark), Some(rest)) = (mark, rest) else {
            return self.abandon(i, m, slot).await;
        };
        if last {
            return self.stop(i, m, slot, mark.len).await;
        }
        if rest.is_empty() {
            return Ok(Sent::Kept);
        }
        let op = Op::Stream(StreamOp::Append);
        if let Some(wait) = self.take(op).await? {
            return Ok(Sent::Wait(wait));
        }
        let text = open_text(slot).unwrap_or_default();
        let before = std::mem::replace(&mut self.p.pages[i], Mark::of(text, true).encode());
        if !self.save("").await? {
            return Ok(Sent::Wait(std::time::Duration::from_secs(3600)));
        }
        match self.sink.append_stream(self.target, m, rest).await {
            Ok(()) => {
                self.p.pages[i] = Mark::of(text, false).encode();
                Ok(Sent::Kept)
            }
            // Not appended: the mark stands as it was.
            Err(e @ PlatformError::RateLimited { .. }) => {
                self.p.pages[i] = before;
                self.outcome(op, Err(e)).await
            }
            // Unknown: the pending mark makes the next step replace the message.
            Err(PlatformError::Transient(_)) => Ok(Sent::Wait(self.worker.settings.cadence)),
            Err(e) => {
                tracing::info!(task.id = %self.c.task_id, reason = e.reason(), "append refused; replacing the stream");
                self.abandon(i, m, slot).await
            }
        }
    }

    /// Stops the stream with the rest of its page; it is a plain message from then on.
    async fn stop(&mut self, i: usize, m: &Owned, slot: &Reply, from: usize) -> Result<Sent, sqlx::Error> {
        let op = Op::Stream(StreamOp::Stop);
        if let Some(wait) = self.take(op).await? {
            return Ok(Sent::Wait(wait));
        }
        match self.sink.stop_stream(self.target, m, Some(&slot.body[from..])).await {
            Ok(()) => {
                self.p.messages[i].via = Via::Channel;
                Ok(Sent::Done)
            }
            Err(e @ (PlatformError::RateLimited { .. } | PlatformError::Transient(_))) => {
                self.outcome(op, Err(e)).await
            }
            Err(e) => {
                tracing::info!(task.id = %self.c.task_id, reason = e.reason(), "stop refused; replacing the stream");
                self.replace(i, slot).await
            }
        }
    }

    /// Stops the stream without adding text and replaces the message with `chat.update`.
    async fn abandon(&mut self, i: usize, m: &Owned, slot: &Reply) -> Result<Sent, sqlx::Error> {
        let op = Op::Stream(StreamOp::Stop);
        if let Some(wait) = self.take(op).await? {
            return Ok(Sent::Wait(wait));
        }
        match self.sink.stop_stream(self.target, m, None).await {
            Err(e @ (PlatformError::RateLimited { .. } | PlatformError::Transient(_))) => {
                self.outcome(op, Err(e)).await
            }
            _ => self.replace(i, slot).await,
        }
    }

    /// Makes message `i` a plain message and shows `slot` in it (a later step retries when this one cannot).
    async fn replace(&mut self, i: usize, slot: &Reply) -> Result<Sent, sqlx::Error> {
        self.p.messages[i].via = Via::Channel;
        set(&mut self.p.pages, i, String::new());
        let m = self.p.messages[i].clone();
        self.edit(&m, slot).await
    }
}

#[cfg(test)]
mod tests {
    use super::Mark;

    #[test]
    fn marks_round_trip_and_find_what_follows() {
        let m = Mark::of("```\nline 1\n", false);
        assert_eq!(Mark::parse(&m.encode()), Some(Mark::of("```\nline 1\n", false)));
        let pending = Mark::of("x", true);
        assert!(Mark::parse(&pending.encode()).is_some_and(|p| p.pending));
        assert_eq!(m.rest("```\nline 1\nline 2\n"), Some("line 2\n"));
        assert_eq!(m.rest("```\nline X\nline 2\n"), None, "not an extension");
        assert_eq!(m.rest("```\n"), None, "shorter");
        assert_eq!(Mark::parse("0a1b2c"), None, "a plain page fingerprint");
    }
}
