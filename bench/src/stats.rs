//! Latency and answer counting: one [`Recorder`] per client task (no lock on the hot path),
//! merged into a [`Row`] of the report when the load ends.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// How many failed answers a recorder keeps verbatim, for the report.
const SAMPLES: usize = 5;

/// The latencies (microseconds) and answers of one kind of request.
pub struct Recorder {
    hist: Histogram<u64>,
    /// Answers by outcome: the HTTP status (`"201"`), or `"transport"` when none came.
    outcomes: BTreeMap<String, u64>,
    /// The first few unexpected answers, with what the server said.
    samples: Vec<String>,
}

impl Recorder {
    pub fn new() -> anyhow::Result<Self> {
        // 1 µs to 10 minutes at 3 significant digits: any answer a client waits for fits.
        let hist = Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")?;
        Ok(Self { hist, outcomes: BTreeMap::new(), samples: Vec::new() })
    }

    /// Counts one answer (its status, or `transport`) that took `elapsed`.
    pub fn record(&mut self, elapsed: Duration, outcome: &str) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(micros);
        *self.outcomes.entry(outcome.to_owned()).or_default() += 1;
    }

    /// Keeps `what` as one of the examples of unexpected answers.
    pub fn sample(&mut self, what: String) {
        if self.samples.len() < SAMPLES {
            self.samples.push(what);
        }
    }

    pub fn merge(&mut self, other: &Recorder) -> anyhow::Result<()> {
        self.hist.add(&other.hist).context("merging histograms")?;
        for (outcome, n) in &other.outcomes {
            *self.outcomes.entry(outcome.clone()).or_default() += n;
        }
        for s in &other.samples {
            self.sample(s.clone());
        }
        Ok(())
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// Answers whose outcome is not in `expected`.
    pub fn unexpected(&self, expected: &[&str]) -> u64 {
        self.outcomes.iter().filter(|(o, _)| !expected.contains(&o.as_str())).map(|(_, n)| n).sum()
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.outcomes.iter().filter(|(o, _)| o.starts_with('5')).map(|(_, n)| n).sum()
    }

    /// The report row of these answers, `seconds` being the time they were sent over.
    pub fn row(&self, name: &str, seconds: f64) -> Row {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        let requests = self.hist.len();
        Row {
            name: name.to_owned(),
            requests,
            seconds,
            per_second: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: self.hist.max() as f64 / 1000.0,
            answers: self.outcomes.clone(),
            unexpected_samples: self.samples.clone(),
        }
    }
}

/// One measured kind of request in a report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub requests: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers by HTTP status, or `transport` for requests that got none.
    pub answers: BTreeMap<String, u64>,
    pub unexpected_samples: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_and_counts_survive_a_merge() {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        for ms in 1..=99 {
            a.record(Duration::from_millis(ms), "200");
        }
        b.record(Duration::from_millis(500), "503");
        b.sample("503 /problems/unavailable".to_owned());
        a.merge(&b).unwrap();
        let row = a.row("x", 2.0);
        assert_eq!(row.requests, 100);
        assert!((row.per_second - 50.0).abs() < 1e-9);
        assert!((row.p50_ms - 50.0).abs() < 0.1, "{}", row.p50_ms);
        assert!((row.max_ms - 500.0).abs() < 0.5, "{}", row.max_ms);
        assert_eq!(a.count("200"), 99);
        assert_eq!(a.server_errors(), 1);
        assert_eq!(a.unexpected(&["200"]), 1);
        assert_eq!(row.unexpected_samples, ["503 /problems/unavailable"]);
    }
}
