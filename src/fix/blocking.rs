//! Blocking work (git2, fsync, file copies, toolchain probes) called from
//! the async repair loop: on a multi-threaded runtime it runs in place while
//! tokio hands this worker's other tasks to another thread, so a slow disk
//! never stalls model streams or test output. Elsewhere it just runs.

pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
