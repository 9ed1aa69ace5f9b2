//! Small statistics helpers over integer samples.

/// Arithmetic mean, or `None` for an empty sample.
pub fn mean(xs: &[i64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(xs.iter().sum::<i64>() as f64 / xs.len() as f64)
}

/// Number of values strictly greater than `threshold`.
pub fn count_above(xs: &[i64], threshold: i64) -> usize {
    xs.iter().filter(|&&x| x >= threshold).count()
}

/// Largest value, or `None` for an empty sample.
pub fn max(xs: &[i64]) -> Option<i64> {
    let mut best = *xs.first()?;
    for &x in &xs[1..] {
        if x > best {
            best = x;
        }
    }
    Some(best)
}
