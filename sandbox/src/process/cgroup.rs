//! A pids cgroup per run, for the one caller RLIMIT_NPROC cannot bound: the
//! kernel never applies it to uid 0, and the kept-uid jail runs as root when
//! selfrepair does. The cgroup lives under this process's own pids cgroup
//! (cgroup v1's `pids` hierarchy, else v2 with the controller enabled),
//! named `selfrepair-<pid>-<n>`; it is emptied and removed when the run ends,
//! and a later start sweeps those of processes that died first. The run
//! cannot raise its limit: its view of cgroupfs is read-only and it has no
//! capabilities.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// One run's pids cgroup; emptied and removed on drop.
pub(crate) struct PidsCgroup {
    dir: PathBuf,
    procs: CString,
    v2: bool,
}

impl PidsCgroup {
    /// A new cgroup that holds at most `max` tasks (processes and threads).
    pub fn new(max: u64) -> Result<PidsCgroup, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let (base, v2) = base()?;
        let dir = base.join(format!(
            "selfrepair-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cg = PidsCgroup {
            procs: CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
                .map_err(|_| format!("{}: a NUL byte in the path", dir.display()))?,
            dir,
            v2: *v2,
        };
        std::fs::write(cg.dir.join("pids.max"), max.to_string())
            .map_err(|e| format!("{}/pids.max: {e}", cg.dir.display()))?;
        Ok(cg)
    }

    /// `cgroup.procs`: writing "0" to it moves the writer in.
    pub fn procs(&self) -> &CString {
        &self.procs
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
            return;
        }
        // Emptying it can take a while, and the caller is an async worker:
        // the rest goes to a thread of its own (the next start sweeps what
        // a process that exits first leaves behind).
        let (dir, v2) = (self.dir.clone(), self.v2);
        let spawned = std::thread::Builder::new()
            .name("selfrepair-cgroup".into())
            .spawn(move || remove(&dir, v2));
        if spawned.is_err() {
            remove(&self.dir, self.v2);
        }
    }
}

/// Kill whatever is left in `dir`, then remove it (a cgroup with tasks in
/// it cannot be removed; dying tasks leave it within milliseconds).
fn remove(dir: &Path, v2: bool) {
    for attempt in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        if v2 {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        } else if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: a plain syscall; the pid is a member the kernel listed.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(if attempt < 10 { 2 } else { 20 }));
    }
    tracing::warn!(cgroup = %dir.display(), "a run's pids cgroup could not be removed");
}

/// This process's own pids cgroup directory, and whether it is cgroup v2;
/// found once. On first use, cgroups left by dead selfrepair processes
/// are removed.
pub fn base() -> Result<&'static (PathBuf, bool), String> {
    static BASE: OnceLock<Result<(PathBuf, bool), String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let found = find().map_err(|e| format!("no pids cgroup to limit the run in: {e}"))?;
        sweep(&found.0, found.1);
        Ok(found)
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn find() -> Result<(PathBuf, bool), String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    // "hierarchy-id:controllers:path"; v1 lists `pids` by name, v2 is "0::".
    let own = |want: &dyn Fn(&str) -> bool| {
        cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            want(ctl).then(|| path.to_string())
        })
    };
    // mountinfo: "id parent dev root mountpoint opts ... - fstype source superopts".
    let mount = |fstype: &str, want: &dyn Fn(&str) -> bool| {
        mounts.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if post.first() != Some(&fstype) || !want(post.get(2).copied().unwrap_or("")) {
                return None;
            }
            Some((pre.get(3)?.to_string(), pre.get(4)?.to_string()))
        })
    };
    let join = |(root, point): (String, String), path: String| {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .trim_start_matches('/');
        PathBuf::from(point).join(rel)
    };
    if let (Some(path), Some(m)) = (
        own(&|c| c.split(',').any(|c| c == "pids")),
        mount("cgroup", &|o| o.split(',').any(|o| o == "pids")),
    ) {
        let dir = join(m, path);
        return writable(&dir).map(|()| (dir, false));
    }
    if let (Some(path), Some(m)) = (own(&|c| c.is_empty()), mount("cgroup2", &|_| true)) {
        let dir = join(m, path);
        let enabled = |d: &Path| {
            std::fs::read_to_string(d.join("cgroup.subtree_control"))
                .is_ok_and(|s| s.split_whitespace().any(|c| c == "pids"))
        };
        if !enabled(&dir) {
            // Only possible where this cgroup has no processes of its own
            // (the root, or a delegated subtree); otherwise the kernel refuses.
            let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+pids");
        }
        if !enabled(&dir) {
            return Err(format!(
                "the pids controller is not enabled for {}'s children",
                dir.display()
            ));
        }
        return writable(&dir).map(|()| (dir, true));
    }
    Err("no cgroup v1 pids hierarchy or cgroup v2 mount".to_string())
}

/// Whether cgroups can be made under `dir`, tried with a throwaway one.
fn writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!("selfrepair-{}-probe", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_dir(&probe);
    Ok(())
}

/// Remove the cgroups of selfrepair processes that no longer exist.
fn sweep(base: &Path, v2: bool) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("selfrepair-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            remove(&e.path(), v2);
        }
    }
}
