//! The shape of the results: each benchmark example writes a list of [`Section`]s as
//! JSON (its fragment); `bench_report` merges the fragments with the machine's
//! description into `bench-results/<date>.json` and renders `<date>.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::machine::Load;
use super::stats::{Series, pair_ratios};

/// One benchmark of issue 8 (or one part of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    /// Stable key, e.g. `postgres_import`.
    pub id: String,
    /// Heading, e.g. "1. Bulk import vs. psql \copy (PostgreSQL)".
    pub title: String,
    /// The service against its reference, round by round.
    pub comparisons: Vec<Comparison>,
    /// Other figures: rows per second, peak RSS, row counts.
    pub facts: Vec<Fact>,
    /// The targets, each met or not.
    pub checks: Vec<Check>,
    /// What a reader needs to interpret the figures.
    pub notes: Vec<String>,
    /// Load average when the section started and ended.
    pub load: Option<(Load, Load)>,
}

impl Section {
    /// An empty section.
    pub fn new(id: &str, title: &str) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            comparisons: Vec::new(),
            facts: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            load: None,
        }
    }

    /// Adds a fact.
    pub fn fact(&mut self, label: impl Into<String>, value: f64, unit: &str) {
        self.facts.push(Fact {
            label: label.into(),
            value,
            unit: unit.into(),
        });
    }

    /// Adds a check of `value` against an upper (`at_most`) or lower limit.
    pub fn check(&mut self, target: impl Into<String>, value: f64, limit: f64, at_most: bool) {
        let met = if at_most {
            value <= limit
        } else {
            value >= limit
        };
        self.checks.push(Check {
            target: target.into(),
            value,
            limit,
            at_most,
            met,
        });
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

/// The service (`ours`) against its reference over the same interleaved rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// What is measured, e.g. "1,000,000-row file, 100,000 employees".
    pub label: String,
    /// Unit of both series: `s` (lower is better) or a rate (higher is better).
    pub unit: String,
    /// The service's side, e.g. "alis-import import-file".
    pub ours_name: String,
    /// The service's measurements.
    pub ours: Series,
    /// The reference's name, e.g. "psql \copy".
    pub reference_name: String,
    /// The reference's measurements.
    pub reference: Series,
    /// Per-round `ours / reference`.
    pub ratio: Series,
}

impl Comparison {
    /// Pairs two interleaved series.
    pub fn new(
        label: impl Into<String>,
        unit: &str,
        (ours_name, ours): (&str, Vec<f64>),
        (reference_name, reference): (&str, Vec<f64>),
    ) -> Self {
        Self {
            label: label.into(),
            unit: unit.into(),
            ours_name: ours_name.into(),
            ratio: pair_ratios(&ours, &reference),
            ours: Series::of(ours),
            reference_name: reference_name.into(),
            reference: Series::of(reference),
        }
    }
}

/// A single figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fact {
    /// What it is.
    pub label: String,
    /// Its value.
    pub value: f64,
    /// Its unit (`rows/s`, `MB`, `rows`, …).
    pub unit: String,
}

/// A target of the issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// The target in words, e.g. "import / \copy ≤ 1.5×".
    pub target: String,
    /// What was measured.
    pub value: f64,
    /// The limit.
    pub limit: f64,
    /// Whether `value` must be at most (else at least) `limit`.
    pub at_most: bool,
    /// Whether it was.
    pub met: bool,
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Writes an example's sections as its JSON fragment.
pub fn write_fragment(path: &Path, sections: &[Section]) {
    let json = serde_json::to_string_pretty(sections).expect("serialise results");
    std::fs::write(path, json).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!("results: {}", path.display());
}
