//! The process sandbox's isolation layers, applied in the child between fork
//! and exec: namespaces, a private tmpfs work dir, rlimits, an unprivileged uid,
//! Landlock and seccomp. Each is detected up front and reported per run.

use crate::outcome::Layer;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What this machine supports, probed once.
#[derive(Clone, Debug)]
pub(crate) struct Support {
    pub root: bool,
    pub namespaces: Result<(), String>,
    pub landlock_abi: Result<i32, String>,
    pub seccomp: Result<(), String>,
}

pub(crate) fn support() -> &'static Support {
    static S: OnceLock<Support> = OnceLock::new();
    S.get_or_init(|| {
        // SAFETY: plain syscalls with no pointers that outlive the call.
        let root = unsafe { libc::geteuid() } == 0;
        let landlock_abi = {
            let v = unsafe {
                libc::syscall(
                    libc::SYS_landlock_create_ruleset,
                    std::ptr::null::<u8>(),
                    0usize,
                    1u32,
                )
            };
            if v > 0 {
                Ok(v as i32)
            } else {
                Err(format!(
                    "landlock unavailable: {}",
                    io::Error::last_os_error()
                ))
            }
        };
        let seccomp = {
            let v = unsafe { libc::prctl(libc::PR_GET_SECCOMP) };
            if v >= 0 {
                Ok(())
            } else {
                Err(format!(
                    "seccomp unavailable: {}",
                    io::Error::last_os_error()
                ))
            }
        };
        Support {
            root,
            namespaces: probe_namespaces(root),
            landlock_abi,
            seccomp,
        }
    })
}

/// Try the namespaces for real in a throwaway child.
fn probe_namespaces(root: bool) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let flags = ns_flags(root);
    let mut cmd = std::process::Command::new("/bin/true");
    // SAFETY: unshare is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("probe exited with {s}")),
        Err(e) => Err(format!("unshare failed: {e}")),
    }
}

fn ns_flags(root: bool) -> libc::c_int {
    let base = libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS;
    if root {
        base
    } else {
        base | libc::CLONE_NEWUSER
    }
}

/// The plan for one child, computed in the parent (no allocation decisions left
/// for the child but the Landlock ruleset).
pub struct Plan {
    pub ns_flags: libc::c_int,
    pub user_ns: bool,
    pub uid: Option<u32>,
    pub real_uid: u32,
    pub real_gid: u32,
    pub workdir: CString,
    pub workdir_path: PathBuf,
    pub tmpfs_bytes: Option<u64>,
    /// A private writable tmpfs of this size over [`SHM_DIR`].
    pub shm_bytes: Option<u64>,
    /// Inodes of the private tmpfs work dir.
    pub tmpfs_inodes: u64,
    /// Host directories covered by an empty read-only tmpfs (where host
    /// pathname sockets live: /run, /tmp, /var/tmp, /dev/shm), each with the
    /// paths under it that the run must still see (bound back in place).
    pub hide: Vec<Hide>,
    /// The read end of the kill pipe: the intermediate kills the
    /// namespace's pid 1 when a byte arrives or the host's end closes.
    pub kill_fd: Option<libc::c_int>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    /// `cgroup.procs` of the run's own pids cgroup, joined first thing.
    pub pids_cgroup: Option<CString>,
    pub landlock: bool,
    pub ro_paths: Vec<PathBuf>,
    pub rw_files: Vec<PathBuf>,
    pub seccomp: Option<(BpfProgram, BpfProgram)>,
    pub allow_network: bool,
    /// Bring up `lo` in the run's own (empty) net namespace.
    pub loopback: bool,
}

/// A host directory hidden under an empty tmpfs, and what is bound back.
pub(crate) struct Hide {
    pub dir: CString,
    pub dir_path: PathBuf,
    pub keep: Vec<Keep>,
}

/// A path under a hidden directory that the run needs (its work dir, a
/// toolchain): cloned before the directory is covered, then mounted back at
/// the same place.
pub struct Keep {
    pub path: CString,
    /// Directories to make, outermost first, in the covering tmpfs.
    pub parents: Vec<CString>,
    pub is_dir: bool,
    pub read_only: bool,
    /// MS_NOEXEC when the host mounts it so (a user namespace may not drop it).
    pub noexec: libc::c_ulong,
}

/// Where POSIX semaphores and shared memory live.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Where host pathname sockets (D-Bus, ssh-agent, gpg-agent, docker.sock,
/// X11, databases) and other users' files live. A run needs nothing there
/// that is not in its read set, and what is gets bound back.
pub(crate) const HIDDEN_DIRS: [&str; 14] = [
    "/run",
    "/var/run",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
    "/root",
    "/home",
    "/var/lib",
    "/var/spool",
    "/var/log",
    "/mnt",
    "/media",
    "/srv",
    "/opt",
];

/// The directories of [`HIDDEN_DIRS`] to cover for a run that must still see
/// `keep_rw` (read-write) and `keep_ro`. A directory that is a symlink (as
/// /var/run usually is), is missing, or is itself (or under) something the
/// run must see whole is left alone; `workdir_tmpfs` is covered by the
/// run's own tmpfs anyway.
pub(crate) fn hidden_dirs(
    keep_rw: &[PathBuf],
    keep_ro: &[PathBuf],
    workdir_tmpfs: Option<&Path>,
) -> Vec<Hide> {
    let mut out = Vec::new();
    for d in HIDDEN_DIRS {
        let dir = Path::new(d);
        if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
            || workdir_tmpfs == Some(dir)
            || keep_rw.iter().chain(keep_ro).any(|k| dir.starts_with(k))
        {
            continue;
        }
        let mut keep = Vec::new();
        let all = keep_rw
            .iter()
            .map(|p| (p, false))
            .chain(keep_ro.iter().map(|p| (p, true)));
        for (p, read_only) in all {
            if !p.starts_with(dir) || p == dir || workdir_tmpfs.is_some_and(|w| p.starts_with(w)) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(p) else {
                continue;
            };
            let parents: Vec<CString> = p
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(dir) && *a != dir)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .filter_map(|a| CString::new(a.as_os_str().as_bytes()).ok())
                .collect();
            let Ok(path) = CString::new(p.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: a valid C string and an out-struct.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            let noexec = if unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0
                && st.f_flag & libc::ST_NOEXEC != 0
            {
                libc::MS_NOEXEC
            } else {
                0
            };
            keep.push(Keep {
                path,
                parents,
                is_dir: meta.is_dir(),
                read_only,
                noexec,
            });
        }
        let Ok(cdir) = CString::new(d) else { continue };
        out.push(Hide {
            dir: cdir,
            dir_path: dir.to_path_buf(),
            keep,
        });
    }
    out
}

impl Plan {
    /// Whether the work dir is the run's own tmpfs (a mount already).
    pub fn workdir_is_tmpfs(&self) -> bool {
        self.tmpfs_bytes.is_some()
    }
}

/// Layers a plan will apply, for the outcome.
pub fn describe(plan: &Plan, s: &Support) -> Vec<Layer> {
    let mut v = Vec::new();
    match (&s.namespaces, plan.ns_flags != 0) {
        (Ok(()), true) => v.push(Layer::on(
            "namespaces",
            if plan.allow_network {
                "pid, ipc, uts, mount (network allowed)"
            } else if plan.loopback {
                "pid, net (its own loopback only), ipc, uts, mount"
            } else {
                "pid, net, ipc, uts, mount"
            },
        )),
        (Err(e), _) => v.push(Layer::off("namespaces", e.clone())),
        (_, false) => v.push(Layer::off("namespaces", "disabled")),
    }
    if plan.user_ns {
        v.push(Layer::on(
            "user-namespace",
            "not root: a user namespace maps the caller",
        ));
    }
    match plan.uid {
        Some(u) => v.push(Layer::on("uid", format!("runs as unprivileged uid {u}"))),
        None if s.root => v.push(Layer::off(
            "uid",
            "keeps the caller's uid (keep_uid: the toolchain is not readable by other users)",
        )),
        None => v.push(Layer::off(
            "uid",
            "not root: cannot switch to a dedicated uid",
        )),
    }
    if let Some(b) = plan.tmpfs_bytes {
        v.push(Layer::on(
            "tmpfs",
            format!(
                "private {} MiB, {} inode work dir",
                b >> 20,
                plan.tmpfs_inodes
            ),
        ));
    }
    if let Some(b) = plan.shm_bytes {
        v.push(Layer::on(
            "shm",
            format!(
                "private {} MiB /dev/shm (the host's is out of sight)",
                b >> 20
            ),
        ));
    }
    if !plan.hide.is_empty() {
        let dirs: Vec<String> = plan
            .hide
            .iter()
            .map(|h| h.dir_path.display().to_string())
            .collect();
        v.push(Layer::on(
            "hidden-dirs",
            format!(
                "empty read-only tmpfs over {} (no host pathname sockets)",
                dirs.join(", ")
            ),
        ));
    }
    if plan.ns_flags & libc::CLONE_NEWNS != 0 {
        v.push(Layer::on(
            "read-only-root",
            "every host mount read-only and nosuid, but the work dir",
        ));
    }
    v.push(Layer::on(
        "capabilities",
        "all dropped: bounding, effective, permitted, inheritable, ambient; root gains none on exec",
    ));
    let nproc = plan.rlimits.iter().any(|(r, _)| *r == libc::RLIMIT_NPROC);
    if s.root && plan.uid.is_none() {
        v.push(match super::cgroup::base() {
            Ok(_) => Layer::on(
                "pids-cgroup",
                "the run's own pids cgroup caps its tasks (the kernel never applies RLIMIT_NPROC to uid 0)",
            ),
            Err(e) => Layer::off("pids-cgroup", e.clone()),
        });
    }
    v.push(Layer::on(
        "rlimits",
        if nproc {
            "AS, CPU, FSIZE, NOFILE, NPROC, CORE=0"
        } else {
            "AS, CPU, FSIZE, NOFILE, CORE=0 (NPROC would count the caller's own processes)"
        },
    ));
    match (&s.landlock_abi, plan.landlock) {
        (Ok(abi), true) => v.push(Layer::on(
            "landlock",
            format!("ABI v{abi}: read-only system paths, read-write work dir"),
        )),
        (Err(e), _) => v.push(Layer::off("landlock", e.clone())),
        (_, false) => v.push(Layer::off("landlock", "disabled")),
    }
    match (&s.seccomp, plan.seccomp.is_some()) {
        (Ok(()), true) => v.push(Layer::on(
            "seccomp",
            "no inet sockets or socket connects, ptrace, mount, bpf, unshare, setns, keyctl, perf, syslog",
        )),
        (Err(e), _) => v.push(Layer::off("seccomp", e.clone())),
        (_, false) => v.push(Layer::off("seccomp", "disabled")),
    }
    v.push(Layer::on("no_new_privs", "set before the program runs"));
    v
}

pub(crate) fn ns_flags_for(s: &Support, allow_network: bool) -> libc::c_int {
    if s.namespaces.is_err() {
        return 0;
    }
    let f = ns_flags(s.root);
    if allow_network {
        f & !libc::CLONE_NEWNET
    } else {
        f
    }
}

/// The seccomp filters: (clone3 -> ENOSYS so libc falls back to clone, whose
/// flags we can inspect; everything else denied -> EPERM).
/// `inet`: inet sockets allowed (a network, or a run's own loopback).
pub(crate) fn seccomp_filters(inet: bool) -> Result<(BpfProgram, BpfProgram), String> {
    let arch =
        TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e:?}"))?;
    let err = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in [
        libc::SYS_ptrace,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_bpf,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_perf_event_open,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_userfaultfd,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fanotify_init,
        libc::SYS_personality,
        // The kernel log (readable by anyone where dmesg_restrict is 0).
        libc::SYS_syslog,
    ] {
        rules.insert(nr, vec![]);
    }
    if !inet {
        // Only AF_UNIX sockets (Python's socketpair); the net namespace is empty anyway.
        let cond = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )
        .map_err(err)?;
        rules.insert(
            libc::SYS_socket,
            vec![SeccompRule::new(vec![cond]).map_err(err)?],
        );
    }
    // clone() creating namespaces.
    let ns_mask = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64;
    let mut clone_rules = Vec::new();
    for bit in 0..64u32 {
        let flag = 1u64 << bit;
        if ns_mask & flag != 0 {
            let c = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .map_err(err)?;
            clone_rules.push(SeccompRule::new(vec![c]).map_err(err)?);
        }
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let mut c3 = BTreeMap::new();
    c3.insert(libc::SYS_clone3, vec![]);
    let clone3 = SeccompFilter::new(
        c3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    let a: BpfProgram = clone3
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))?;
    let b: BpfProgram = deny
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))?;
    Ok((a, b))
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// Runs in the forked child, before exec. Must not return in the intermediate
/// process (it waits for the namespace's pid 1 and exits with its status).
///
/// # Safety
/// Called between fork and exec; only syscalls and the Landlock ruleset
/// (which allocates: fine with glibc, whose fork resets the allocator locks).
pub unsafe fn apply(plan: &Plan) -> io::Result<()> {
    unsafe {
        // The run's process group is this process's pid, which the parent knows
        // and kills on timeout; the intermediate leaves it (below) so that it
        // survives the kill, reaps pid 1, and no zombie is left behind.
        let parent_group = libc::getpgrp();
        if let Some(procs) = &plan.pids_cgroup {
            // Before anything forks, so that every task of the run counts.
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd.min(0), "open the run's pids cgroup")?;
            let n = libc::write(fd, c"0".as_ptr().cast(), 1);
            libc::close(fd);
            check(if n == 1 { 0 } else { -1 }, "join the run's pids cgroup")?;
        }
        check(libc::setpgid(0, 0), "setpgid")?;
        if plan.ns_flags != 0 {
            check(libc::unshare(plan.ns_flags), "unshare")?;
            if plan.user_ns {
                write_file("/proc/self/setgroups", b"deny")?;
                write_file(
                    "/proc/self/uid_map",
                    format!("0 {} 1", plan.real_uid).as_bytes(),
                )?;
                write_file(
                    "/proc/self/gid_map",
                    format!("0 {} 1", plan.real_gid).as_bytes(),
                )?;
            }
        }
        if plan.ns_flags & libc::CLONE_NEWPID != 0 {
            // The program becomes pid 1 of the new namespace: when it ends, the
            // kernel kills everything left in the namespace, daemons included.
            let pid = libc::fork();
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            if pid > 0 {
                libc::setpgid(0, parent_group);
                // Close the exec-status pipe (and all else but the kill
                // pipe) so the parent's spawn returns.
                close_all_but(plan.kill_fd);
                supervise(pid, plan.kill_fd);
                let mut status = 0;
                loop {
                    let r = libc::waitpid(pid, &mut status, 0);
                    if r == pid {
                        break;
                    }
                    if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                        libc::_exit(125);
                    }
                }
                if libc::WIFEXITED(status) {
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                libc::_exit(128 + libc::WTERMSIG(status));
            }
        }
        if plan.ns_flags & libc::CLONE_NEWNS != 0 {
            // Keep our mounts from propagating back to the host.
            check(
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ),
                "make / private",
            )?;
            if let Some(bytes) = plan.tmpfs_bytes {
                let owner = plan.uid.unwrap_or(0);
                let opts = CString::new(format!(
                    "size={bytes},nr_inodes={},mode=0700,uid={owner},gid={owner}",
                    plan.tmpfs_inodes
                ))
                .map_err(|e| io::Error::other(e.to_string()))?;
                check(
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        plan.workdir.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        opts.as_ptr().cast(),
                    ),
                    "mount tmpfs work dir",
                )?;
            }
            if !plan.workdir_is_tmpfs() {
                // A mount of its own, so it can stay writable below.
                check(
                    libc::mount(
                        plan.workdir.as_ptr(),
                        plan.workdir.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                    "bind the work dir",
                )?;
            }
            for h in &plan.hide {
                hide(h)?;
            }
            if plan.loopback {
                // Best effort: without `lo` a run still runs, only with no
                // loopback (as without the flag); its tests say so.
                let _ = loopback_up();
            }
            if let Some(bytes) = plan.shm_bytes {
                // Sticky and world-writable, as the host's: semaphores are
                // files here (`sem_open`), made by whatever uid runs.
                let opts = CString::new(format!("size={bytes},nr_inodes=4096,mode=1777"))
                    .map_err(|e| io::Error::other(e.to_string()))?;
                check(
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        c"/dev/shm".as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        opts.as_ptr().cast(),
                    ),
                    "mount a private /dev/shm",
                )?;
            }
            // Every host file in sight is read-only: no chmod, chown or
            // utime of it, whatever the uid (Landlock does not cover those).
            mount_setattr(c"/", AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)
                .map_err(|e| io::Error::new(e.kind(), format!("read-only root: {e}")))?;
            mount_setattr(plan.workdir.as_c_str(), 0, 0, MOUNT_ATTR_RDONLY)
                .map_err(|e| io::Error::new(e.kind(), format!("writable work dir: {e}")))?;
            if plan.shm_bytes.is_some() {
                mount_setattr(c"/dev/shm", 0, 0, MOUNT_ATTR_RDONLY)
                    .map_err(|e| io::Error::new(e.kind(), format!("writable /dev/shm: {e}")))?;
            }
        }
        check(libc::chdir(plan.workdir.as_ptr()), "chdir to work dir")?;
        for (res, v) in &plan.rlimits {
            let lim = libc::rlimit {
                rlim_cur: *v,
                rlim_max: *v,
            };
            check(libc::setrlimit(*res, &lim), "setrlimit")?;
        }
        // No capability survives, whatever the uid: root (the kept-uid
        // jail) gains none on exec, and none can be raised again.
        drop_bounding_caps()?;
        if let Some(uid) = plan.uid {
            check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
            check(libc::setresgid(uid, uid, uid), "setresgid")?;
            check(libc::setresuid(uid, uid, uid), "setresuid")?;
        }
        clear_caps()?;
        if plan.ns_flags & libc::CLONE_NEWPID != 0 {
            // If the intermediate dies, so does pid 1, and so the namespace.
            // Set after the uid change, which clears it.
            check(
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ),
                "pdeathsig",
            )?;
        }
        if plan.landlock {
            landlock_restrict(plan)?;
        }
        if let Some((a, b)) = &plan.seccomp {
            seccompiler::apply_filter(a).map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
            seccompiler::apply_filter(b).map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
        } else {
            check(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                "no_new_privs",
            )?;
        }
        // Nothing of the parent's leaks in but stdio.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        Ok(())
    }
}

const PR_CAPBSET_DROP: libc::c_int = 24;
const PR_SET_SECUREBITS: libc::c_int = 28;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
/// SECBIT_NOROOT | _LOCKED, SECBIT_KEEP_CAPS_LOCKED (keep-caps off),
/// SECBIT_NO_CAP_AMBIENT_RAISE | _LOCKED.
pub(crate) const SECUREBITS: libc::c_ulong = 0x1 | 0x2 | 0x20 | 0x40 | 0x80;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 2;

/// mount_setattr(2) on `path` (Linux >= 5.12).
unsafe fn mount_setattr(
    path: &std::ffi::CStr,
    flags: libc::c_uint,
    set: u64,
    clr: u64,
) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid path and attribute struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
/// The covering tmpfs: tiny, and read-only once the kept paths are back.
pub(crate) const HIDE_OPTS: &std::ffi::CStr = c"size=1m,nr_inodes=256,mode=0755";
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// Empty the bounding and ambient sets and lock the securebits that give
/// uid 0 capabilities on exec. Needs CAP_SETPCAP (still held here).
unsafe fn drop_bounding_caps() -> io::Result<()> {
    unsafe {
        check(
            libc::prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0),
            "securebits",
        )?;
        for cap in 0..64 {
            if libc::prctl(PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                // EINVAL past the kernel's last capability.
                break;
            }
        }
        check(
            libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
            "clear ambient caps",
        )
    }
}

/// Empty the effective, permitted and inheritable sets.
unsafe fn clear_caps() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let d = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: valid header and two data structs, as version 3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) };
    check(rc as libc::c_int, "capset")
}

/// Close every fd from 3 up except `keep`.
unsafe fn close_all_but(keep: Option<libc::c_int>) {
    unsafe {
        match keep {
            Some(k) if k >= 3 => {
                if k > 3 {
                    libc::syscall(libc::SYS_close_range, 3u32, (k - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (k + 1) as u32, u32::MAX, 0u32);
            }
            _ => {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            }
        }
    }
}

/// The intermediate's watch over pid 1 (its child, unreaped, so the pid
/// cannot be reused): until pid 1 ends, a byte on the kill pipe (or the
/// host's end closing, the host gone) kills it with SIGKILL, and with it the
/// whole pid namespace. pid 1 may have left the process group (`setsid`)
/// and cleared its parent-death signal; this reaches it all the same.
/// Without pidfds (Linux < 5.3) the caller just waits.
unsafe fn supervise(pid: libc::pid_t, kill_fd: Option<libc::c_int>) {
    unsafe {
        let Some(kill_fd) = kill_fd else { return };
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0u32) as libc::c_int;
        if pidfd < 0 {
            return;
        }
        let mut fds = [
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: kill_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            let n = libc::poll(fds.as_mut_ptr(), 2, -1);
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            if fds[0].revents != 0 {
                break;
            }
            if fds[1].revents != 0 {
                libc::kill(pid, libc::SIGKILL);
                break;
            }
        }
        libc::close(pidfd);
    }
}

/// Bring up `lo` in the run's fresh net namespace (which has nothing else),
/// while the child still has CAP_NET_ADMIN there.
unsafe fn loopback_up() -> io::Result<()> {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("loopback socket: {e}")));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if rc == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let e = io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(io::Error::new(e.kind(), format!("bring up lo: {e}")));
        }
        Ok(())
    }
}

/// Cover `h.dir` with an empty tmpfs, putting back what the run must see.
unsafe fn hide(h: &Hide) -> io::Result<()> {
    unsafe {
        // Clone what stays visible before the directory is covered.
        if h.keep.is_empty() {
            return check(
                libc::mount(
                    c"tmpfs".as_ptr(),
                    h.dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
                    HIDE_OPTS.as_ptr().cast(),
                ),
                "hide a host directory",
            );
        }
        let mut clones = Vec::with_capacity(h.keep.len());
        for k in &h.keep {
            let fd = libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                k.path.as_ptr(),
                OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
            ) as libc::c_int;
            if fd < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("open_tree {:?}: {e}", k.path),
                ));
            }
            clones.push(fd);
        }
        check(
            libc::mount(
                c"tmpfs".as_ptr(),
                h.dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                HIDE_OPTS.as_ptr().cast(),
            ),
            "hide a host directory",
        )?;
        for (k, fd) in h.keep.iter().zip(clones) {
            for p in &k.parents {
                libc::mkdir(p.as_ptr(), 0o755);
            }
            if k.is_dir {
                libc::mkdir(k.path.as_ptr(), 0o755);
            } else {
                let f = libc::open(
                    k.path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if f >= 0 {
                    libc::close(f);
                }
            }
            let rc = libc::syscall(
                libc::SYS_move_mount,
                fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                k.path.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ) as libc::c_int;
            libc::close(fd);
            check(rc, "bind a kept path back")?;
            if k.read_only {
                check(
                    libc::mount(
                        std::ptr::null(),
                        k.path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REMOUNT
                            | libc::MS_BIND
                            | libc::MS_RDONLY
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | k.noexec,
                        std::ptr::null(),
                    ),
                    "make a kept path read-only",
                )?;
            }
        }
        check(
            libc::mount(
                std::ptr::null(),
                h.dir.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
                std::ptr::null(),
            ),
            "make a hidden directory read-only",
        )
    }
}

fn write_file(path: &str, data: &[u8]) -> io::Result<()> {
    std::fs::write(path, data).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// The Landlock rights every run gets, stated once for both paths: the
/// crate's ruleset in [`apply`], and raw numbers for the fork server
/// ([`landlock_spec`]). Rights newer than ABI v5 (or the kernel) are left out.
mod rights {
    use landlock::{ABI, Access, AccessFs, AccessNet, BitFlags, Scope};
    const ABI_USED: ABI = ABI::V5;
    pub fn fs() -> BitFlags<AccessFs> {
        AccessFs::from_all(ABI_USED)
    }
    pub fn read() -> BitFlags<AccessFs> {
        AccessFs::from_read(ABI_USED)
    }
    /// Handled (so denied) unless the network is allowed.
    pub fn net() -> BitFlags<AccessNet> {
        AccessNet::BindTcp | AccessNet::ConnectTcp
    }
    pub fn scopes() -> BitFlags<Scope> {
        Scope::AbstractUnixSocket | Scope::Signal
    }
}

fn landlock_restrict(plan: &Plan) -> io::Result<()> {
    use landlock::{
        CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr, path_beneath_rules,
    };
    let ll = |e: landlock::RulesetError| io::Error::other(format!("landlock: {e}"));
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(rights::fs())
        .map_err(ll)?;
    // With a loopback of its own, ports on it are the run's business.
    if !plan.allow_network && !plan.loopback {
        rs = rs.handle_access(rights::net()).map_err(ll)?;
    }
    rs = rs.scope(rights::scopes()).map_err(ll)?;
    let created = rs
        .create()
        .map_err(ll)?
        .add_rules(path_beneath_rules(&plan.ro_paths, rights::read()))
        .map_err(ll)?
        .add_rules(path_beneath_rules(&plan.rw_files, rights::fs()))
        .map_err(ll)?
        .add_rules(path_beneath_rules([&plan.workdir_path], rights::fs()))
        .map_err(ll)?
        .add_rules(path_beneath_rules(
            plan.shm_bytes.map(|_| Path::new(SHM_DIR)),
            rights::fs(),
        ))
        .map_err(ll)?;
    created.restrict_self().map_err(ll)?;
    Ok(())
}

/// The Landlock ruleset of a plan as plain numbers, for the fork server (which
/// makes the syscalls itself): the [`rights`] that [`landlock_restrict`] asks
/// the crate for, trimmed to what the kernel's ABI knows, as the crate's
/// best-effort mode does.
pub(crate) fn landlock_spec(plan: &Plan, kernel_abi: i32) -> serde_json::Value {
    use landlock::{ABI, Access, AccessFs, AccessNet, BitFlags, Scope};
    let abi = ABI::from(kernel_abi);
    let fs = rights::fs() & AccessFs::from_all(abi);
    let net = if plan.allow_network || plan.loopback {
        BitFlags::empty()
    } else {
        rights::net() & AccessNet::from_all(abi)
    };
    let scoped = rights::scopes() & Scope::from_all(abi);
    // The kernel takes the struct's size: a field it does not know must be cut off.
    let attr_size = if !scoped.is_empty() {
        24
    } else if !net.is_empty() {
        16
    } else {
        8
    };
    let rule = |p: &PathBuf, access: BitFlags<AccessFs>| {
        // Like `path_beneath_rules`: a file takes only the rights a file has.
        let file = std::fs::metadata(p).is_ok_and(|m| !m.is_dir());
        let access = if file {
            access & AccessFs::from_file(abi)
        } else {
            access
        };
        serde_json::json!([p.to_string_lossy(), access.bits()])
    };
    let read = rights::read() & fs;
    let rules: Vec<_> = plan
        .ro_paths
        .iter()
        .map(|p| rule(p, read))
        .chain(plan.rw_files.iter().map(|p| rule(p, fs)))
        .chain(std::iter::once(rule(&plan.workdir_path, fs)))
        .collect();
    serde_json::json!({
        "fs": fs.bits(),
        "net": net.bits(),
        "scoped": scoped.bits(),
        "attr_size": attr_size,
        "rules": rules,
    })
}

/// A seccomp filter as the bytes of its `sock_filter` array.
pub(crate) fn bpf_bytes(prog: &BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for f in prog {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}
