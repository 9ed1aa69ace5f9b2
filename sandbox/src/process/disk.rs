//! A cap on a writable work dir on the host's disk (a repository's work
//! copy): its bytes and inodes, whatever the run writes. RLIMIT_FSIZE caps
//! one file; this caps them all.
//!
//! No unprivileged mechanism caps a host directory (quotas and loop mounts
//! need root, a tmpfs would lose the build caches between runs), so the host
//! watches it: the filesystem's own counters (`statvfs`, one syscall) every
//! [`POLL`]; when they grew past the room left, a walk of the directory
//! confirms it (other processes write to the same filesystem), and the run
//! is stopped. A walk that cannot see everything (unreadable or too deep
//! directories) confirms nothing, so the filesystem's growth decides. What
//! a run can write past the cap is bounded by its write rate over one poll.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the filesystem's counters are read.
const POLL: Duration = Duration::from_millis(100);

/// The most a work dir may hold, in bytes allocated and inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskCap {
    pub bytes: u64,
    pub inodes: u64,
}

impl DiskCap {
    pub fn describe(&self) -> String {
        format!(
            "work dir capped at {} MiB and {} inodes (a host-side watch; files also by FSIZE)",
            self.bytes >> 20,
            self.inodes
        )
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    bytes: u64,
    inodes: u64,
}

/// Resolves, with the reason, once `dir` holds more than `cap`; never
/// otherwise.
pub(crate) async fn exceeded(dir: PathBuf, cap: DiskCap) -> String {
    let d = dir.clone();
    let Ok(Some(mut held)) = tokio::task::spawn_blocking(move || walk(&d)).await else {
        // A work dir we cannot even walk at the start: the filesystem's
        // growth alone is measured, from nothing held.
        return watch_fs(&dir, cap, Usage::default()).await;
    };
    loop {
        if let Some(why) = over(held, cap) {
            return why;
        }
        let grown = watch_fs(&dir, cap, held).await;
        let d = dir.clone();
        // A dir under its cap means others wrote to the filesystem: watch
        // again from there.
        held = match tokio::task::spawn_blocking(move || walk(&d)).await {
            Ok(Some(now)) => now,
            _ => return grown,
        };
    }
}

fn over(u: Usage, cap: DiskCap) -> Option<String> {
    if u.bytes > cap.bytes {
        return Some(format!(
            "the work dir grew to {} MiB, past its cap of {} MiB",
            u.bytes >> 20,
            cap.bytes >> 20
        ));
    }
    (u.inodes > cap.inodes).then(|| {
        format!(
            "the work dir grew to {} files and directories, past its cap of {}",
            u.inodes, cap.inodes
        )
    })
}

/// Resolves once the filesystem holding `dir` grew by more than the room
/// `held` leaves under `cap`.
async fn watch_fs(dir: &Path, cap: DiskCap, held: Usage) -> String {
    let room = Usage {
        bytes: cap.bytes.saturating_sub(held.bytes),
        inodes: cap.inodes.saturating_sub(held.inodes),
    };
    let start = fs_used(dir);
    loop {
        tokio::time::sleep(POLL).await;
        let (Some(a), Some(b)) = (start, fs_used(dir)) else {
            continue;
        };
        let grown = Usage {
            bytes: b.bytes.saturating_sub(a.bytes),
            inodes: b.inodes.saturating_sub(a.inodes),
        };
        if grown.bytes > room.bytes || grown.inodes > room.inodes {
            return over(
                Usage {
                    bytes: held.bytes + grown.bytes,
                    inodes: held.inodes + grown.inodes,
                },
                cap,
            )
            .unwrap_or_else(|| "the work dir grew past its cap".into());
        }
    }
}

/// What the filesystem holding `dir` has in use.
fn fs_used(dir: &Path) -> Option<Usage> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is plain integers, for which all zeroes is a value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(Usage {
        bytes: (s.f_blocks.saturating_sub(s.f_bfree) as u64).saturating_mul(s.f_frsize as u64),
        inodes: s.f_files.saturating_sub(s.f_ffree) as u64,
    })
}

/// Bytes allocated and inodes under `dir` (links not followed, hard links
/// once, other filesystems not entered); None when part of it could not be
/// read, so the count would be short.
fn walk(dir: &Path) -> Option<Usage> {
    let root = std::fs::symlink_metadata(dir).ok()?;
    let dev = root.dev();
    let mut seen = HashSet::new();
    let mut u = Usage::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()? {
            let e = e.ok()?;
            let m = e.metadata().ok()?;
            if m.dev() != dev {
                continue;
            }
            if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
                continue;
            }
            u.inodes += 1;
            u.bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_counts_bytes_and_inodes_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("dirs");
        std::fs::write(sub.join("f"), vec![1u8; 1 << 20]).expect("file");
        std::fs::hard_link(sub.join("f"), dir.path().join("g")).expect("link");
        std::os::unix::fs::symlink("/usr", dir.path().join("l")).expect("symlink");
        let u = walk(dir.path()).expect("walk");
        // a, a/b, a/b/f (g is the same inode), l.
        assert_eq!(u.inodes, 4, "{u:?}");
        assert!(u.bytes >= 1 << 20 && u.bytes < 2 << 20, "{u:?}");
    }
}
