//! What one run of a scenario found: its measured rows, its facts (set-up time, counts), and
//! its correctness checks; written as JSON (for scripts and plots) and as a Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::stats::Row;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The deployment's name given with `--label` (e.g. `sqlite`), for the tables.
    pub label: String,
    pub base: String,
    /// RFC 3339, when the run started.
    pub started_at: String,
    /// The scenario's options as run.
    pub parameters: Value,
    pub rows: Vec<Row>,
    /// Counts and times that are not a latency row: set-up time, sold-out time, completions.
    pub facts: BTreeMap<String, Value>,
    pub checks: Vec<Check>,
}

/// A correctness check: its failure makes the run fail, whatever the speed.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Report {
    pub fn new(scenario: &str, label: &str, base: &str, parameters: Value) -> Self {
        Self {
            scenario: scenario.to_owned(),
            label: label.to_owned(),
            base: base.to_owned(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            parameters,
            rows: Vec::new(),
            facts: BTreeMap::new(),
            checks: Vec::new(),
        }
    }

    pub fn fact(&mut self, name: &str, value: impl Into<Value>) {
        self.facts.insert(name.to_owned(), value.into());
    }

    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check { name: name.to_owned(), passed, detail: detail.into() });
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn check_named(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let params = serde_json::to_string(&self.parameters).unwrap_or_default();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "### {} — {} ({})\n", self.scenario, self.label, self.started_at);
        let _ = writeln!(out, "`{}` against {}\n", params, self.base);
        let _ = writeln!(out, "| request | count | per s | p50 ms | p90 ms | p99 ms | max ms | answers |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
        for r in &self.rows {
            let answers: Vec<String> = r.answers.iter().map(|(s, n)| format!("{n}×{s}")).collect();
            // A row measured without a time span (the race's rounds) has no rate.
            let rate = if r.seconds > 0.0 { format!("{:.0}", r.per_second) } else { "–".to_owned() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                r.name,
                r.requests,
                rate,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                answers.join(" ")
            );
        }
        if !self.facts.is_empty() {
            out.push('\n');
            for (k, v) in &self.facts {
                let _ = writeln!(out, "- {k}: {v}");
            }
        }
        out.push('\n');
        for c in &self.checks {
            let mark = if c.passed { "pass" } else { "**FAIL**" };
            let _ = writeln!(out, "- {mark} {}: {}", c.name, c.detail);
        }
        for r in self.rows.iter().filter(|r| !r.unexpected_samples.is_empty()) {
            let _ = writeln!(out, "\nUnexpected answers to {}:", r.name);
            for s in &r.unexpected_samples {
                let _ = writeln!(out, "- `{s}`");
            }
        }
        out
    }
}
