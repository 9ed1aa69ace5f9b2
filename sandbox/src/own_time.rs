//! A run's own time: the wall time since it started less the time it spent
//! runnable but waiting for a CPU (the kernel's `schedstat`). Limits are on
//! it, so that a program that computes for 1 s is judged alike on an idle
//! machine and on one loaded past its cores, where it may take several
//! seconds of wall time. Sleeping is a run's own time. How far a deadline may
//! move is capped at [`MAX_STRETCH`] times the limit in wall time: a program
//! that starts busy children makes its own pid 1 wait.

use std::time::{Duration, Instant};

/// See the module's documentation.
pub(crate) const MAX_STRETCH: u32 = 3;

/// The time a task has waited on a run queue, from a `schedstat` file
/// (its second field, in nanoseconds).
fn waited(schedstat: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(schedstat).ok()?;
    let ns = text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

/// `Some(time left)` while a run that has taken `elapsed` of wall time, of
/// which it `waited` for a CPU, is within `limit` of its own time (and
/// within the cap); `None` once it is due.
fn left(elapsed: Duration, waited: Duration, limit: Duration) -> Option<Duration> {
    let own = elapsed.saturating_sub(waited);
    let cap = limit.saturating_mul(MAX_STRETCH);
    (own < limit && elapsed < cap).then(|| {
        (limit - own)
            .max(Duration::from_millis(5))
            .min(cap - elapsed)
    })
}

/// Time left for a process run whose pid 1 has host pid `pid` (its wait is
/// counted from its start, which is after `elapsed` began); `None` once it
/// is due, or if its wait cannot be read.
pub(crate) fn process_left(pid: i32, elapsed: Duration, limit: Duration) -> Option<Duration> {
    left(elapsed, waited(&format!("/proc/{pid}/schedstat"))?, limit)
}

/// The clock of a run on this thread (a wasm guest, which runs on the
/// thread that calls into it until it yields).
pub(crate) struct ThreadClock {
    tid: libc::pid_t,
    waited: Duration,
    started: Instant,
}

impl ThreadClock {
    pub fn start() -> Option<ThreadClock> {
        Some(ThreadClock {
            // SAFETY: gettid has no preconditions.
            tid: unsafe { libc::gettid() },
            waited: waited("/proc/thread-self/schedstat")?,
            started: Instant::now(),
        })
    }

    /// Time left of `limit` for the run, read on the thread it runs on now;
    /// `None` once it is due, or if it moved to another thread (its wait
    /// there is not comparable).
    pub fn left(&self, limit: Duration) -> Option<Duration> {
        // SAFETY: as above.
        if unsafe { libc::gettid() } != self.tid {
            return None;
        }
        let now = waited("/proc/thread-self/schedstat")?;
        left(
            self.started.elapsed(),
            now.saturating_sub(self.waited),
            limit,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_for_a_cpu_moves_the_deadline_out_up_to_the_cap() {
        let ms = Duration::from_millis;
        // Idle: wall time is own time.
        assert_eq!(left(ms(400), ms(0), ms(1000)), Some(ms(600)));
        assert_eq!(left(ms(1000), ms(0), ms(1000)), None);
        // Loaded: 1.5 s of wall time, 1 s of it waiting.
        assert_eq!(left(ms(1500), ms(1000), ms(1000)), Some(ms(500)));
        // Never past the cap, however long the wait.
        assert_eq!(left(ms(2900), ms(2800), ms(1000)), Some(ms(100)));
        assert_eq!(left(ms(3000), ms(2900), ms(1000)), None);
        // A last sliver is still a few ms.
        assert_eq!(left(ms(999), ms(0), ms(1000)), Some(ms(5)));
        // This thread's clock reads.
        let c = ThreadClock::start().expect("schedstat");
        assert!(c.left(Duration::from_secs(60)).is_some());
    }
}
