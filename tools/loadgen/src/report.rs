//! Results of one step, and the Markdown summary of many runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latencies of successful requests, in microseconds.
#[derive(Debug, Default)]
pub(crate) struct Latencies(Vec<u64>);

impl Latencies {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
}

/// The result of one offered rate against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The target's name.
    pub label: String,
    /// Offered requests per second.
    pub offered: u32,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed: non-2xx, transport errors, timeouts.
    pub errors: u64,
    /// Successful answers per second, from the first scheduled send to the last answer.
    pub achieved: f64,
    /// Median latency from the scheduled send time, in milliseconds (`None` without a single success).
    pub p50_ms: Option<f64>,
    /// 99th percentile, in milliseconds.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, in milliseconds.
    pub p999_ms: Option<f64>,
    /// Slowest, in milliseconds.
    pub max_ms: Option<f64>,
}

impl Step {
    pub(crate) fn new(
        label: &str,
        offered: u32,
        sent: usize,
        errors: u64,
        elapsed: Duration,
        latencies: Latencies,
    ) -> Self {
        let mut l = latencies.0;
        l.sort_unstable();
        let ok = l.len() as u64;
        let pick = |q: f64| {
            if l.is_empty() {
                return None;
            }
            #[expect(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "percentile index"
            )]
            let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
            Some(ms(l[i]))
        };
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let achieved = ok as f64 / elapsed.as_secs_f64();
        Self {
            label: label.to_string(),
            offered,
            sent: sent as u64,
            ok,
            errors,
            achieved,
            p50_ms: pick(0.5),
            p99_ms: pick(0.99),
            p999_ms: pick(0.999),
            max_ms: l.last().map(|m| ms(*m)),
        }
    }
}

#[expect(clippy::cast_precision_loss, reason = "microseconds far below 2^52")]
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn shown(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"))
}

/// A Markdown table: per target and offered rate, the median over runs of each column, the number of runs, and
/// the achieved rate relative to the first target seen (the baseline).
pub fn summarize(steps: &[Step]) -> String {
    let mut labels: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<(u32, usize), Vec<&Step>> = BTreeMap::new();
    for s in steps {
        let idx = labels.iter().position(|l| *l == s.label).unwrap_or_else(|| {
            labels.push(&s.label);
            labels.len() - 1
        });
        groups.entry((s.offered, idx)).or_default().push(s);
    }
    let mut out = String::from(
        "| target | offered/s | runs | achieved/s | vs baseline | p50 ms | p99 ms | p99.9 ms | max ms | errors |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let achieved = |g: &[&Step]| median(g.iter().map(|s| s.achieved).collect()).unwrap_or(0.0);
    for ((offered, idx), g) in &groups {
        let col = |f: fn(&Step) -> Option<f64>| shown(median(g.iter().filter_map(|s| f(s)).collect()));
        let base = groups.get(&(*offered, 0)).map(|b| achieved(b));
        let ratio = match base {
            Some(b) if *idx != 0 && b > 0.0 => format!("{:.2}×", achieved(g) / b),
            _ => "—".to_string(),
        };
        let errors: u64 = g.iter().map(|s| s.errors).sum();
        let _ = writeln!(
            out,
            "| {} | {offered} | {} | {:.0} | {ratio} | {} | {} | {} | {} | {errors} |",
            labels[*idx],
            g.len(),
            achieved(g),
            col(|s| s.p50_ms),
            col(|s| s.p99_ms),
            col(|s| s.p999_ms),
            col(|s| s.max_ms),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let mut l = Latencies::default();
        for us in (1..=1000).rev() {
            l.push(Duration::from_micros(us));
        }
        let s = Step::new("x", 100, 1000, 2, Duration::from_secs(10), l);
        assert_eq!((s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms), (Some(0.5), Some(0.99), Some(0.999), Some(1.0)));
        let none = Step::new("x", 100, 5, 5, Duration::from_secs(1), Latencies::default());
        assert_eq!((none.p99_ms, none.achieved), (None, 0.0));
        assert_eq!((s.ok, s.errors), (1000, 2));
        assert!((s.achieved - 100.0).abs() < 1e-9);
    }

    #[test]
    fn summary_takes_medians_and_compares_with_the_baseline() {
        let step = |label: &str, achieved: f64, p99: f64| Step {
            label: label.into(),
            offered: 1000,
            sent: 10,
            ok: 10,
            errors: 0,
            achieved,
            p50_ms: Some(1.0),
            p99_ms: Some(p99),
            p999_ms: Some(3.0),
            max_ms: Some(4.0),
        };
        let table = summarize(&[
            step("bolt", 900.0, 20.0),
            step("cynode", 1000.0, 5.0),
            step("bolt", 1000.0, 30.0),
            step("cynode", 1000.0, 7.0),
            step("bolt", 950.0, 25.0),
        ]);
        assert!(table.contains("| bolt | 1000 | 3 | 950 | — | 1.00 | 25.00 |"), "{table}");
        assert!(table.contains("| cynode | 1000 | 2 | 1000 | 1.05× | 1.00 | 6.00 |"), "{table}");
    }
}
