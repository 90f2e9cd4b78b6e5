//! A job attempt's output as the stream shows it: the head in full (enough for every page a stream posts)
//! and a rolling tail, with totals, so memory stays bounded whatever the job prints.

/// Bytes kept from the start of the output (more than `max_messages` pages need).
const HEAD_CAP: usize = 64 * 1024;
/// Bytes kept from the end once the head is full.
const TAIL_CAP: usize = 16 * 1024;

/// Output of one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Body {
    /// The attempt the output belongs to.
    pub(crate) attempt: i32,
    /// The start of the output.
    pub(crate) head: String,
    /// The end of the output past the head (its start may have been dropped).
    pub(crate) tail: String,
    /// Bytes dropped between head and tail.
    pub(crate) dropped_bytes: u64,
    /// Total bytes seen.
    pub(crate) bytes: u64,
    /// Total newlines seen.
    pub(crate) lines: u64,
}

impl Body {
    pub(crate) fn new(attempt: i32) -> Self {
        Self { attempt, ..Self::default() }
    }

    /// Appends a chunk.
    pub(crate) fn push(&mut self, data: &str) {
        self.bytes += data.len() as u64;
        self.lines += data.bytes().filter(|b| *b == b'\n').count() as u64;
        if self.tail.is_empty() && self.head.len() + data.len() <= HEAD_CAP {
            self.head.push_str(data);
            return;
        }
        self.tail.push_str(data);
        if self.tail.len() > TAIL_CAP {
            let mut cut = self.tail.len() - TAIL_CAP;
            while !self.tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.dropped_bytes += cut as u64;
            self.tail.drain(..cut);
        }
    }

    /// Whether everything is held (nothing dropped, no tail).
    pub(crate) fn is_whole(&self) -> bool {
        self.tail.is_empty()
    }

    /// Whether nothing was printed.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The lines of output (a last line without newline counts).
    pub(crate) fn line_count(&self) -> u64 {
        let last = self.tail.as_str().chars().last().or_else(|| self.head.chars().last());
        self.lines + u64::from(last.is_some_and(|c| c != '\n'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_within_caps() {
        let mut body = Body::new(1);
        let line = "é123456789\n";
        for _ in 0..20_000 {
            body.push(line);
        }
        assert!(body.head.len() <= HEAD_CAP);
        assert!(body.tail.len() <= TAIL_CAP);
        assert!(!body.is_whole());
        assert_eq!(body.line_count(), 20_000);
        assert_eq!(body.bytes, body.head.len() as u64 + body.tail.len() as u64 + body.dropped_bytes);
    }
}
