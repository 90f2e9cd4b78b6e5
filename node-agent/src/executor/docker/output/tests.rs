//! Pump behaviour on scripted frame streams (no engine needed).

use bollard::container::LogOutput;
use futures_util::stream;
use tokio::sync::mpsc;

use super::*;

fn out(data: &[u8]) -> Result<LogOutput, bollard::errors::Error> {
    Ok(LogOutput::StdOut { message: data.to_vec().into() })
}

fn err(data: &[u8]) -> Result<LogOutput, bollard::errors::Error> {
    Ok(LogOutput::StdErr { message: data.to_vec().into() })
}

async fn pump_all(
    frames: Vec<Result<LogOutput, bollard::errors::Error>>,
    limit: u64,
) -> (PumpEnd, Pump, Vec<OutputChunk>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let mut pump = Pump::new(tx, limit);
    let mut frames = stream::iter(frames);
    let end = pump.pump(&mut frames).await;
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    (end, pump, chunks)
}

#[tokio::test]
async fn output_exactly_at_the_limit_is_not_truncated() {
    let (end, pump, chunks) = pump_all(vec![out(b"12345"), out(b"67890")], 10).await;
    assert!(matches!(end, PumpEnd::Eof));
    assert!(!pump.truncated());
    assert_eq!(pump.accepted(), 10);
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
    assert_eq!(all, b"1234567890");
}

#[tokio::test]
async fn output_past_the_limit_is_cut_and_marked() {
    let (end, pump, chunks) = pump_all(vec![out(b"12345"), err(b"678901234"), out(b"x")], 8).await;
    assert!(matches!(end, PumpEnd::LimitReached));
    assert!(pump.truncated());
    assert_eq!(pump.accepted(), 8);
    let last = chunks.last().expect("marker");
    assert_eq!(last.stream, OutputStream::Stderr);
    assert!(String::from_utf8_lossy(&last.data).contains(TRUNCATION_MARKER));
    let job: Vec<u8> = chunks[..chunks.len() - 1].iter().flat_map(|c| c.data.clone()).collect();
    assert_eq!(job, b"12345678");
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.seq, i as u64);
    }
}

#[tokio::test]
async fn bursts_are_coalesced_and_streams_stay_in_order() {
    let mut frames: Vec<_> = (0..1000).map(|_| out(b"0123456789")).collect();
    frames.push(err(b"E"));
    frames.push(out(b"tail"));
    let (end, pump, chunks) = pump_all(frames, u64::MAX).await;
    assert!(matches!(end, PumpEnd::Eof));
    assert_eq!(pump.accepted(), 10_005);
    // 1,002 frames arriving at once: the first is sent at once, the rest are coalesced.
    assert!(chunks.len() <= 6, "{} chunks", chunks.len());
    let mut runs: Vec<(OutputStream, usize)> = Vec::new();
    for c in &chunks {
        match runs.last_mut() {
            Some((s, n)) if *s == c.stream => *n += c.data.len(),
            _ => runs.push((c.stream, c.data.len())),
        }
    }
    assert_eq!(runs, [(OutputStream::Stdout, 10_000), (OutputStream::Stderr, 1), (OutputStream::Stdout, 4)]);
}

#[tokio::test]
async fn big_frames_are_split_into_bounded_chunks() {
    let big = vec![b'a'; 3 * MAX_CHUNK_BYTES + 5];
    let (_, _, chunks) = pump_all(vec![out(&big)], u64::MAX).await;
    let sizes: Vec<_> = chunks.iter().map(|c| c.data.len()).collect();
    assert_eq!(sizes, [MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 5]);
}

#[tokio::test]
async fn a_dropped_receiver_does_not_stop_the_pump() {
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let mut pump = Pump::new(tx, 100);
    let mut frames = stream::iter(vec![out(b"abc"), out(b"def")]);
    assert!(matches!(pump.pump(&mut frames).await, PumpEnd::Eof));
    assert_eq!(pump.accepted(), 6);
}
