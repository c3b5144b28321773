//! Medians, extremes and percentiles of interleaved rounds.

use serde::{Deserialize, Serialize};

/// A set of measurements of one quantity, with its median, min and max.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    /// Every measurement, in the order taken.
    pub samples: Vec<f64>,
    /// Median (the mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Series {
    /// The series of `samples` (at least one).
    pub fn of(samples: Vec<f64>) -> Self {
        assert!(!samples.is_empty(), "a series needs a sample");
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            samples,
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }

    /// Each sample mapped, e.g. seconds to rows per second.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self::of(self.samples.iter().map(|&s| f(s)).collect())
    }
}

/// Per-pair ratios `ours[i] / reference[i]` of two interleaved series.
pub fn pair_ratios(ours: &[f64], reference: &[f64]) -> Series {
    assert_eq!(ours.len(), reference.len(), "rounds are paired");
    Series::of(ours.iter().zip(reference).map(|(a, b)| a / b).collect())
}

/// The `p`-th percentile (0–100, nearest rank) of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `a` then `b`, `rounds` times, returning both series of what they measured.
/// The order alternates each round (A B, B A, …) so neither side always runs on a
/// cache the other warmed or a machine the other heated.
pub fn interleave(
    rounds: usize,
    mut a: impl FnMut(usize) -> f64,
    mut b: impl FnMut(usize) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            xs.push(a(round));
            ys.push(b(round));
        } else {
            ys.push(b(round));
            xs.push(a(round));
        }
        eprintln!(
            "  round {}: {:.3} vs {:.3}",
            round + 1,
            xs[round],
            ys[round]
        );
    }
    (xs, ys)
}
