//! Percentile bootstrap over tasks: how much an estimate would move with
//! another draw of tasks from the same distribution. The tree bootstrap
//! (in [`super::estimate`]) resamples programs inside a fixed set of tasks,
//! so its spread says nothing about that; this one resamples the tasks.
//!
//! Nesting is done by expectation: a tree-bootstrap estimate is the mean over
//! tasks of each task's mean over tree resamples, so resampling tasks and
//! averaging their per-task means is the nested bootstrap with the inner one
//! run to its expectation. It costs one weighted sum per task resample.

use rand::rngs::Xoshiro256PlusPlus as Xoshiro;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

/// Task resamples per interval.
pub(crate) const TASK_RESAMPLES: usize = 1000;
/// Seeded apart from the tree bootstrap's 2023 so the two draws are unrelated.
pub(crate) const TASK_SEED: u64 = 2024;
/// Two-sided coverage of every interval we report.
pub(crate) const LEVEL: f64 = 0.95;

/// A percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// `b` resamples of `n` tasks with replacement, as how often each task was drawn.
#[derive(Clone, Debug)]
pub(crate) struct Resamples {
    counts: Vec<Vec<u32>>,
    n: usize,
}

impl Resamples {
    pub fn new(n: usize, b: usize, seed: u64) -> Resamples {
        let mut rng = Xoshiro::seed_from_u64(seed);
        // No tasks, no resamples: every interval is then None.
        let counts = (0..if n == 0 { 0 } else { b })
            .map(|_| {
                let mut c = vec![0u32; n];
                for _ in 0..n {
                    c[rng.random_range(0..n)] += 1;
                }
                c
            })
            .collect();
        Resamples { counts, n }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// The mean of per-task values `x` in each resample.
    pub fn means(&self, x: &[f64]) -> Vec<f64> {
        debug_assert_eq!(x.len(), self.n);
        self.counts
            .iter()
            .map(|c| c.iter().zip(x).map(|(&k, v)| f64::from(k) * v).sum::<f64>() / self.n as f64)
            .collect()
    }
}

/// The central `LEVEL` percentile interval of `v` (linear between order
/// statistics); None when `v` is empty or holds a NaN.
pub fn percentile(v: &[f64]) -> Option<Interval> {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (s.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos.fract());
        let j = (i + 1).min(s.len() - 1);
        s[i] + f * (s[j] - s[i])
    };
    let tail = (1.0 - LEVEL) / 2.0;
    Some(Interval {
        lo: q(tail),
        hi: q(1.0 - tail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_sequence() {
        // 0..=1000: the 2.5% and 97.5% points are 25 and 975.
        let v: Vec<f64> = (0..=1000).rev().map(f64::from).collect();
        let iv = percentile(&v).expect("interval");
        assert!(
            (iv.lo - 25.0).abs() < 1e-9 && (iv.hi - 975.0).abs() < 1e-9,
            "{iv:?}"
        );
        assert_eq!(percentile(&[]), None);
        assert_eq!(percentile(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn resampled_means_of_a_bernoulli_spread_like_its_standard_error() {
        // 100 tasks, 30 pass: a resampled mean has sd sqrt(.3*.7/100) = 0.046,
        // so the 95% interval is about 0.30 ± 0.09.
        let x: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i < 30))).collect();
        let r = Resamples::new(100, TASK_RESAMPLES, TASK_SEED);
        let m = r.means(&x);
        assert_eq!(m.len(), TASK_RESAMPLES);
        let iv = percentile(&m).expect("interval");
        assert!((iv.lo - 0.21).abs() < 0.025, "{iv:?}");
        assert!((iv.hi - 0.39).abs() < 0.025, "{iv:?}");
        // Every resample draws n tasks.
        assert!(r.counts.iter().all(|c| c.iter().sum::<u32>() == 100));
    }
}
