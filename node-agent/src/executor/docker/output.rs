//! Turning the engine's stdout/stderr frames into bounded, numbered, coalesced chunks.

use std::collections::VecDeque;
use std::time::Duration;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// The job's standard output.
    Stdout,
    /// The job's standard error (also carries the executor's truncation notice).
    Stderr,
}

/// A piece of the job's output.
///
/// `seq` starts at 0 for each run and grows by one per chunk across both streams, so sorting by
/// `seq` restores the interleaving, and `(job, attempt, stream, seq)` is unique. A chunk holds at
/// most [`MAX_CHUNK_BYTES`] bytes and never mixes streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Stream of origin.
    pub stream: OutputStream,
    /// Sequence number within the run.
    pub seq: u64,
    /// Raw bytes (not necessarily UTF-8, not necessarily whole lines).
    pub data: Vec<u8>,
}

/// Upper bound on the bytes in one chunk.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;

/// Output is flushed at most once per this window unless a chunk fills up, so a chatty process
/// yields a few chunks per second instead of one per write, while a quiet one's first line is sent
/// at once.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(50);

/// Start of the notice sent on stderr when output is cut off.
pub const TRUNCATION_MARKER: &str = "[cynode] output truncated";

/// Why [`Pump::pump`] returned.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// The engine closed the stream (the container's stdio is closed: it exited or was killed).
    Eof,
    /// `max_output_bytes` was reached; the marker was sent.
    LimitReached,
    /// The attach stream broke.
    Broken(bollard::errors::Error),
}

/// Forwards output to a channel, numbering, coalescing and capping it. All state lives here and
/// every await point is cancel-safe, so [`Pump::pump`] may be dropped (e.g. on timeout) and called
/// again to drain the rest without losing or duplicating bytes.
pub(crate) struct Pump {
    tx: mpsc::Sender<OutputChunk>,
    limit: u64,
    accepted: u64,
    seq: u64,
    /// Chunks not yet sent, oldest first; each holds one stream and at most `MAX_CHUNK_BYTES`.
    queue: VecDeque<(OutputStream, Vec<u8>)>,
    last_flush: Option<Instant>,
    truncated: bool,
    receiver_gone: bool,
}

impl Pump {
    pub(crate) fn new(tx: mpsc::Sender<OutputChunk>, limit: u64) -> Self {
        Self {
            tx,
            limit,
            accepted: 0,
            seq: 0,
            queue: VecDeque::new(),
            last_flush: None,
            truncated: false,
            receiver_gone: false,
        }
    }

    /// Bytes of job output accepted (at most the limit; the notice is not counted).
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Whether output was cut off at the limit.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    /// Reads `frames` until it ends, breaks, or the limit is reached; everything queued is sent
    /// before returning. Cancel-safe.
    pub(crate) async fn pump<S>(&mut self, frames: &mut S) -> PumpEnd
    where
        S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    {
        loop {
            if self.truncated {
                // Keep reading (and discarding) so the engine is not blocked, but send the notice.
                self.flush_all().await;
            } else {
                self.flush_full().await;
            }
            let flush_at = self.flush_deadline();
            tokio::select! {
                frame = frames.next() => match frame {
                    None => {
                        self.flush_all().await;
                        return PumpEnd::Eof;
                    }
                    Some(Err(e)) => {
                        self.flush_all().await;
                        return PumpEnd::Broken(e);
                    }
                    Some(Ok(frame)) => {
                        if self.accept(frame) {
                            self.flush_all().await;
                            return PumpEnd::LimitReached;
                        }
                        if self.last_flush.is_none_or(|t| t.elapsed() >= COALESCE_WINDOW) {
                            self.flush_all().await;
                        }
                    }
                },
                () = sleep_until_opt(flush_at) => self.flush_all().await,
            }
        }
    }

    /// Queues one frame (synchronously); returns true when it has just hit the limit.
    fn accept(&mut self, frame: LogOutput) -> bool {
        let (stream, bytes) = match frame {
            LogOutput::StdOut { message } => (OutputStream::Stdout, message),
            // A TTY-less container only sends stdout and stderr; anything else counts as stderr.
            LogOutput::StdErr { message } | LogOutput::Console { message } | LogOutput::StdIn { message } => {
                (OutputStream::Stderr, message)
            }
        };
        if self.truncated || bytes.is_empty() {
            return false; // after the cut: discard
        }
        let room = self.limit - self.accepted;
        let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.append(stream, &bytes[..take]);
        if take < bytes.len() {
            self.truncated = true;
            let notice = format!(
                "\n{TRUNCATION_MARKER}: the limit of {} bytes was reached and the job was stopped\n",
                self.limit
            );
            self.queue.push_back((OutputStream::Stderr, notice.into_bytes()));
            return true;
        }
        false
    }

    fn append(&mut self, stream: OutputStream, mut bytes: &[u8]) {
        self.accepted += bytes.len() as u64;
        while !bytes.is_empty() {
            let reuse = self.queue.back().is_some_and(|(s, b)| *s == stream && b.len() < MAX_CHUNK_BYTES);
            if !reuse {
                self.queue.push_back((stream, Vec::new()));
            }
            let Some((_, buf)) = self.queue.back_mut() else {
                return;
            };
            let n = (MAX_CHUNK_BYTES - buf.len()).min(bytes.len());
            buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
    }

    fn flush_deadline(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        Some(self.last_flush.map_or_else(Instant::now, |t| t + COALESCE_WINDOW))
    }

    /// Sends every queued chunk that can no longer grow (all but a partly filled last one).
    async fn flush_full(&mut self) {
        while self.queue.len() > 1 || self.queue.front().is_some_and(|(_, b)| b.len() == MAX_CHUNK_BYTES) {
            self.send_front().await;
        }
    }

    /// Sends everything queued.
    async fn flush_all(&mut self) {
        while !self.queue.is_empty() {
            self.send_front().await;
        }
        self.last_flush = Some(Instant::now());
    }

    /// Sends the oldest queued chunk. The chunk leaves the queue only once the channel has room,
    /// so dropping this future loses nothing.
    async fn send_front(&mut self) {
        let permit = if self.receiver_gone { None } else { self.tx.reserve().await.ok() };
        let Some((stream, data)) = self.queue.pop_front() else {
            return;
        };
        match permit {
            Some(p) => {
                p.send(OutputChunk { stream, seq: self.seq, data });
                self.seq += 1;
            }
            None if !self.receiver_gone => {
                self.receiver_gone = true;
                tracing::debug!("output receiver dropped; discarding the rest of the output");
            }
            None => {}
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
