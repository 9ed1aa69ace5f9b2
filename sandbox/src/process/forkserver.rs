//! The fork server: one pre-started `python3` with the harness loaded, which
//! forks per run and applies the same per-run layers as [`super::layers::apply`]
//! in the child (see `python/forkserver.py`). A run then costs a fork instead
//! of an interpreter start. The host hands each run its own pipes, so the
//! request and the output never pass through the server.

use super::layers::{self, Plan, Support};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, sendmsg, setsockopt,
    socketpair, sockopt,
};
use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) const FORKSERVER_PY: &str = include_str!("../../python/forkserver.py");

/// How long the server may take to start, and to take one run's message.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct ForkServer {
    pid: u32,
    child: Child,
    /// Our end of the SOCK_SEQPACKET control socket: one message per run,
    /// and each `sendmsg` is one whole message, so runs need no lock.
    ctl: OwnedFd,
}

impl ForkServer {
    /// Start the server with `python`, the marshalled harness `harness_code`,
    /// and the sandbox's seccomp filters. Blocks until it says it is ready.
    pub fn start(
        python: &Path,
        env: &[(String, String)],
        harness_code: &[u8],
        seccomp: Option<&(seccompiler::BpfProgram, seccompiler::BpfProgram)>,
    ) -> Result<ForkServer, String> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("socketpair: {e}"))?;
        setsockopt(
            &ours,
            sockopt::SendTimeout,
            &nix::sys::time::TimeVal::new(SEND_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(|e| format!("socket timeout: {e}"))?;
        let theirs_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(python);
        cmd.args(["-I", "-S", "-B", "-c", FORKSERVER_PY])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: dup2 and fcntl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // The control socket becomes fd 3, without close-on-exec.
                let rc = if theirs_fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(theirs_fd, 3)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
        drop(theirs);
        let init = init_message(harness_code, seccomp);
        let written = child
            .stdin
            .take()
            .map(|mut s| s.write_all(&init))
            .unwrap_or(Ok(()));
        let ready = written.is_ok() && wait_ready(&ours);
        if !ready {
            let _ = child.kill();
            let mut why = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut why);
            }
            let _ = child.wait();
            let last = why.lines().last().unwrap_or("no message").to_string();
            return Err(format!("the fork server did not start: {last}"));
        }
        drop(child.stderr.take());
        Ok(ForkServer {
            pid: child.id(),
            child,
            ctl: ours,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Ask for one run: the server forks, the child applies `plan` and runs
    /// the harness with `fds` (stdin, stdout, stderr, status) as its own;
    /// the fifth is the kill pipe its intermediate watches.
    pub fn launch(&self, plan: &Plan, support: &Support, fds: [RawFd; 5]) -> std::io::Result<()> {
        let msg = plan_message(plan, support);
        let sent = sendmsg::<UnixAddr>(
            self.ctl.as_raw_fd(),
            &[IoSlice::new(&msg)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        if sent != msg.len() {
            return Err(std::io::Error::other("short message to the fork server"));
        }
        Ok(())
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(ctl: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: ctl.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, START_TIMEOUT.as_millis() as i32) };
    if n != 1 {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(nix::sys::socket::recv(ctl.as_raw_fd(), &mut buf, MsgFlags::empty()), Ok(5) if &buf[..5] == b"ready")
}

/// The server's init record: the harness, the filters, and the constants of
/// this platform (syscall numbers, flags) that its ctypes calls need.
fn init_message(
    harness_code: &[u8],
    seccomp: Option<&(seccompiler::BpfProgram, seccompiler::BpfProgram)>,
) -> Vec<u8> {
    let filters: Vec<String> = seccomp
        .map(|(a, b)| {
            vec![
                hex::encode(layers::bpf_bytes(a)),
                hex::encode(layers::bpf_bytes(b)),
            ]
        })
        .unwrap_or_default();
    let consts = serde_json::json!({
        "CLONE_NEWNS": libc::CLONE_NEWNS,
        "MS_REC": libc::MS_REC,
        "MS_PRIVATE": libc::MS_PRIVATE,
        "MS_NOSUID": libc::MS_NOSUID,
        "MS_NODEV": libc::MS_NODEV,
        "PR_SET_NO_NEW_PRIVS": libc::PR_SET_NO_NEW_PRIVS,
        "PR_SET_PDEATHSIG": libc::PR_SET_PDEATHSIG,
        "MS_RDONLY": libc::MS_RDONLY,
        "MS_NOEXEC": libc::MS_NOEXEC,
        "SYS_capset": libc::SYS_capset,
        "SYS_mount_setattr": libc::SYS_mount_setattr,
        "MOUNT_ATTR_RDONLY": layers::MOUNT_ATTR_RDONLY,
        "MOUNT_ATTR_NOSUID": layers::MOUNT_ATTR_NOSUID,
        "SECUREBITS": layers::SECUREBITS,
        "HIDE_OPTS": layers::HIDE_OPTS.to_string_lossy(),
        "SYS_seccomp": libc::SYS_seccomp,
        "SYS_landlock_create_ruleset": libc::SYS_landlock_create_ruleset,
        "SYS_landlock_add_rule": libc::SYS_landlock_add_rule,
        "SYS_landlock_restrict_self": libc::SYS_landlock_restrict_self,
    });
    crate::harness::marshal_request(&serde_json::json!({
        "harness": hex::encode(harness_code),
        "seccomp": filters,
        "consts": consts,
    }))
}

/// One run's plan, as the server's child applies it.
fn plan_message(plan: &Plan, support: &Support) -> Vec<u8> {
    let landlock = match (&support.landlock_abi, plan.landlock) {
        (Ok(abi), true) => layers::landlock_spec(plan, *abi),
        _ => serde_json::Value::Null,
    };
    let rlimits: Vec<_> = plan
        .rlimits
        .iter()
        .map(|(r, v)| serde_json::json!([*r as i64, v]))
        .collect();
    crate::harness::marshal_request(&serde_json::json!({
        "ns_flags": plan.ns_flags,
        "user_ns": plan.user_ns,
        "real_uid": plan.real_uid,
        "real_gid": plan.real_gid,
        "uid": plan.uid,
        "workdir": plan.workdir_path.to_string_lossy(),
        "tmpfs_bytes": plan.tmpfs_bytes,
        "tmpfs_inodes": plan.tmpfs_inodes,
        // Directories with nothing to bind back (the server's runs are fresh).
        "hide": plan.hide.iter().filter(|h| h.keep.is_empty())
            .map(|h| h.dir_path.to_string_lossy()).collect::<Vec<_>>(),
        "rlimits": rlimits,
        "landlock": landlock,
    }))
}
