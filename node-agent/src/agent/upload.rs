//! Uploading a job's output: chunks from the executor are turned into UTF-8 protocol chunks (a character
//! split across two chunks is carried over, never mangled), batched (at most one batch window or
//! `batch_max_chunks` chunks, and well under the request size limit) and uploaded in order, retrying
//! transient failures. A `stale_lease` answer marks the lease lost: the job is stopped and the rest of its
//! output dropped. With protocol 2 the last batch (everything not yet uploaded when the job's output ends) is
//! not uploaded but handed back, to ride in the finish request: a short job then costs one request and one
//! write on the orchestrator instead of two.

use std::collections::HashMap;

use cynode_protocol::{self as proto, LeaseRef, OutputBatch, Stream};
use tokio::sync::mpsc;

use super::held::{JobControl, StopReason};
use crate::client::{Backoff, ClientError, OrchestratorClient};
use crate::config::AgentTiming;
use crate::executor::{OutputChunk, OutputStream};

/// Encoded size of one upload, kept well under the orchestrator's default 1 MiB body limit.
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Most chunks carried in a finish; a longer tail is uploaded on its own (the orchestrator allows 256).
const MAX_CARRIED_CHUNKS: usize = 128;

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadEnd {
    /// Every chunk was uploaded (or refused as invalid and dropped, which is logged), except `tail`: the last
    /// chunks, to send with the finish (empty unless the caller asked to carry it).
    Done {
        /// Chunks not uploaded, in order.
        tail: Vec<proto::OutputChunk>,
    },
    /// The lease was lost; output was dropped.
    Lost,
}

/// Turns raw executor chunks into UTF-8 text, carrying an incomplete trailing character of each stream
/// over to that stream's next chunk. Invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    carry: HashMap<Stream, Vec<u8>>,
    next_seq: u64,
}

impl Decoder {
    /// The protocol chunk for `chunk`, or `None` when all of its bytes are carried over.
    pub(crate) fn decode(&mut self, chunk: OutputChunk) -> Option<proto::OutputChunk> {
        let stream = match chunk.stream {
            OutputStream::Stdout => Stream::Stdout,
            OutputStream::Stderr => Stream::Stderr,
        };
        self.next_seq = self.next_seq.max(chunk.seq + 1);
        let carry = self.carry.entry(stream).or_default();
        let mut bytes = std::mem::take(carry);
        bytes.extend_from_slice(&chunk.data);
        let cut = incomplete_tail(&bytes);
        carry.extend_from_slice(&bytes[cut..]);
        bytes.truncate(cut);
        (!bytes.is_empty()).then(|| proto::OutputChunk {
            stream,
            seq: chunk.seq,
            data: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Whatever is still carried at the end (an incomplete character), as final chunks.
    pub(crate) fn finish(&mut self) -> Vec<proto::OutputChunk> {
        let mut rest: Vec<(Stream, Vec<u8>)> = self.carry.drain().filter(|(_, b)| !b.is_empty()).collect();
        rest.sort_by_key(|(s, _)| s.as_str());
        rest.into_iter()
            .map(|(stream, bytes)| {
                let seq = self.next_seq;
                self.next_seq += 1;
                proto::OutputChunk { stream, seq, data: String::from_utf8_lossy(&bytes).into_owned() }
            })
            .collect()
    }
}

/// Where an incomplete UTF-8 sequence at the end of `b` starts (`b.len()` when there is none).
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let i = b.len() - back;
        let byte = b[i];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: keep looking for the lead byte
        }
        let needed = match byte {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if needed > back { i } else { b.len() };
    }
    b.len()
}

/// Uploads everything `rx` yields for `lease`, in order, until `rx` closes or the lease is lost. With
/// `carry_tail` (protocol 2), the last batch is returned instead of uploaded, when it is small enough to ride in
/// the finish request.
pub(crate) async fn upload(
    client: &OrchestratorClient,
    lease: LeaseRef,
    control: &JobControl,
    mut rx: mpsc::UnboundedReceiver<OutputChunk>,
    timing: &AgentTiming,
    carry_tail: bool,
) -> UploadEnd {
    let mut decoder = Decoder::default();
    let mut open = true;
    let mut last = Vec::new();
    while open {
        let Some(first) = rx.recv().await else { break };
        let mut batch: Vec<proto::OutputChunk> = decoder.decode(first).into_iter().collect();
        let mut bytes: usize = batch.iter().map(encoded_len).sum();
        let deadline = tokio::time::Instant::now() + timing.batch_window;
        while batch.len() < timing.batch_max_chunks && bytes < MAX_BATCH_BYTES {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(chunk) => if let Some(c) = decoder.decode(chunk) {
                        bytes += encoded_len(&c);
                        batch.push(c);
                    },
                    None => { open = false; break; }
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !open {
            last = batch;
            break;
        }
        if !batch.is_empty() && send(client, lease, control, batch, timing).await == UploadEnd::Lost {
            return UploadEnd::Lost;
        }
    }
    last.extend(decoder.finish());
    let carry = carry_tail
        && last.len() <= MAX_CARRIED_CHUNKS
        && last.iter().map(encoded_len).sum::<usize>() <= MAX_BATCH_BYTES;
    if carry || last.is_empty() {
        return UploadEnd::Done { tail: last };
    }
    send(client, lease, control, last, timing).await
}

fn encoded_len(c: &proto::OutputChunk) -> usize {
    // JSON escaping can grow control characters sixfold; measure rather than guess.
    serde_json::to_string(&c.data).map_or(c.data.len() * 6, |s| s.len()) + 48
}

/// Uploads one batch, retrying transient failures until it is stored or the lease is lost.
async fn send(
    client: &OrchestratorClient,
    lease: LeaseRef,
    control: &JobControl,
    chunks: Vec<proto::OutputChunk>,
    timing: &AgentTiming,
) -> UploadEnd {
    let batch = OutputBatch { lease, chunks };
    let mut backoff = Backoff::new(timing.retry_base, timing.retry_cap);
    loop {
        if control.is_lost() {
            return UploadEnd::Lost;
        }
        let result = tokio::select! {
            r = client.output(&batch) => r,
            () = control.lost() => return UploadEnd::Lost,
        };
        match result {
            Ok(ack) => {
                if ack.cancel {
                    control.cancel(StopReason::CancelRequested);
                }
                return UploadEnd::Done { tail: Vec::new() };
            }
            Err(ClientError::Stale { code, .. }) => {
                tracing::warn!(job.id = %lease.job_id, job.attempt = lease.attempt, code,
                    "the orchestrator says this lease is gone; stopping the job and dropping its output");
                control.lose();
                return UploadEnd::Lost;
            }
            Err(e @ (ClientError::Transient(_) | ClientError::Unauthorized { .. })) => {
                let delay = backoff.next_delay();
                if backoff.worth_logging() {
                    tracing::warn!(job.id = %lease.job_id, error = %e, failures = backoff.failures(),
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "output upload failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {},
                    () = control.lost() => return UploadEnd::Lost,
                }
            }
            Err(e) => {
                tracing::error!(job.id = %lease.job_id, error = %e, chunks = batch.chunks.len(),
                    "the orchestrator refused an output batch; dropping it");
                return UploadEnd::Done { tail: Vec::new() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(stream: OutputStream, seq: u64, data: &[u8]) -> OutputChunk {
        OutputChunk { stream, seq, data: data.to_vec() }
    }

    #[test]
    fn characters_split_across_chunks_are_carried_per_stream() {
        let mut d = Decoder::default();
        let euro = "€".as_bytes(); // three bytes
        let a = d.decode(raw(OutputStream::Stdout, 0, &[b'a', euro[0]])).expect("a");
        assert_eq!((a.seq, a.data.as_str()), (0, "a"));
        let e = d.decode(raw(OutputStream::Stderr, 1, b"err")).expect("stderr is separate");
        assert_eq!((e.stream, e.data.as_str()), (Stream::Stderr, "err"));
        assert!(d.decode(raw(OutputStream::Stdout, 2, &euro[1..2])).is_none(), "still incomplete");
        let b = d.decode(raw(OutputStream::Stdout, 3, &[euro[2], b'b'])).expect("b");
        assert_eq!((b.seq, b.data.as_str()), (3, "€b"));
        assert!(d.finish().is_empty());
    }

    #[test]
    fn invalid_bytes_are_replaced_and_a_dangling_tail_is_flushed_last() {
        let mut d = Decoder::default();
        let c = d.decode(raw(OutputStream::Stdout, 0, &[0xFF, b'x', 0xE2, 0x82])).expect("chunk");
        assert_eq!(c.data, "\u{FFFD}x");
        let rest = d.finish();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].seq, rest[0].data.as_str()), (1, "\u{FFFD}"));
    }

    #[test]
    fn incomplete_tails_are_found() {
        assert_eq!(incomplete_tail(b"abc"), 3);
        assert_eq!(incomplete_tail(&[b'a', 0xF0, 0x9F, 0x98]), 1);
        assert_eq!(incomplete_tail("a😀".as_bytes()), 5);
        assert_eq!(incomplete_tail(&[0x80, 0x80, 0x80, 0x80]), 4, "garbage is not carried");
        assert_eq!(incomplete_tail(&[]), 0);
    }
}
