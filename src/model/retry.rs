//! Retry timing: exponential backoff with jitter, or the server's
//! Retry-After when it sends one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// First backoff; doubles on every retry.
    pub base_delay: Duration,
    /// Cap on any single wait, Retry-After included, so a server asking
    /// for an hour cannot stall a run.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Wait before retry number `retry` (0-based). Retry-After is honoured
    /// as a floor, plus up to 10% jitter so many clients told the same time
    /// do not return at once; otherwise "equal jitter": a uniform wait
    /// between half and all of `base * 2^retry`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let d = match retry_after {
            Some(ra) => ra.mul_f64(1.0 + rand::random_range(0.0..0.1)),
            None => {
                let exp = self
                    .base_delay
                    .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
                exp.mul_f64(rand::random_range(0.5..=1.0))
            }
        };
        d.min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d0 = p.delay(0, None);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d2 = p.delay(2, None);
            assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400));
            assert!(p.delay(30, None) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn retry_after_is_a_floor_but_capped() {
        let p = RetryPolicy::default();
        for _ in 0..50 {
            let d = p.delay(0, Some(Duration::from_secs(2)));
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_millis(2200));
        }
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600))), p.max_delay);
    }
}
