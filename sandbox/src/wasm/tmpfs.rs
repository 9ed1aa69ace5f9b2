//! Detached tmpfs mounts for the wasm runs' /tmp: made with
//! fsopen/fsmount and never attached to any mount namespace, so each exists
//! only as a descriptor, capped in bytes and inodes, and gone with its last
//! descriptor on every exit path, `kill -9` included.
//!
//! Root makes them directly. Any other caller asks a helper process, forked
//! once, that lives in a user and mount namespace of its own (where it may
//! mount) and answers each request on a socket with a new mount's
//! descriptor. The helper dies with its parent. It is forked at the first
//! wasm run, closes every descriptor but its socket, and touches none of
//! the memory it shares copy-on-write with its parent.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

/// The fsconfig strings of a wasm run's /tmp ([`super::TMP_BYTES`],
/// [`super::TMP_INODES`]), made before any fork.
struct Options {
    size: CString,
    inodes: CString,
}

impl Options {
    fn new() -> Options {
        Options {
            size: CString::new(super::TMP_BYTES.to_string()).unwrap_or_default(),
            inodes: CString::new(super::TMP_INODES.to_string()).unwrap_or_default(),
        }
    }
}

/// A new detached tmpfs for a wasm run's /tmp, through the helper when not
/// root.
pub fn make() -> io::Result<OwnedFd> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return mount(&Options::new());
    }
    static HELPER: OnceLock<Result<Helper, String>> = OnceLock::new();
    match HELPER.get_or_init(|| Helper::start(Options::new())) {
        Ok(h) => h.request(),
        Err(e) => Err(io::Error::other(e.clone())),
    }
}

/// fsopen, fsconfig, fsmount: plain syscalls on strings made beforehand, so
/// that a forked child may call it.
fn mount(o: &Options) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 4;
    const MOUNT_ATTR_NOEXEC: libc::c_uint = 8;
    let err = io::Error::last_os_error;
    // SAFETY: plain syscalls on C strings that outlive them; fds are owned below.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC);
        if fs < 0 {
            return Err(err());
        }
        let fs = OwnedFd::from_raw_fd(fs as i32);
        for (k, v) in [
            (c"size", o.size.as_c_str()),
            (c"nr_inodes", o.inodes.as_c_str()),
            (c"mode", c"0777"),
        ] {
            if libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            ) < 0
            {
                return Err(err());
            }
        }
        if libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ) < 0
        {
            return Err(err());
        }
        let mnt = libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        );
        if mnt < 0 {
            return Err(err());
        }
        Ok(OwnedFd::from_raw_fd(mnt as i32))
    }
}

/// The helper's end of the socket, one request at a time.
struct Helper {
    sock: Mutex<OwnedFd>,
}

impl Helper {
    /// Fork the helper and check that it can mount (one test request).
    fn start(o: Options) -> Result<Helper, String> {
        let mut pair = [0; 2];
        // SAFETY: socketpair fills two fds, owned below.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } < 0
        {
            return Err(format!("socketpair: {}", io::Error::last_os_error()));
        }
        // SAFETY: both fds are fresh and ours.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        // SAFETY: getuid/getgid/getpid cannot fail.
        let (uid, gid, parent) = unsafe { (libc::getuid(), libc::getgid(), libc::getpid()) };
        let maps = [
            (
                c"/proc/self/setgroups",
                CString::new("deny").unwrap_or_default(),
            ),
            (
                c"/proc/self/uid_map",
                CString::new(format!("0 {uid} 1")).unwrap_or_default(),
            ),
            (
                c"/proc/self/gid_map",
                CString::new(format!("0 {gid} 1")).unwrap_or_default(),
            ),
        ];
        // SAFETY: the child makes only syscalls on what was made above, and
        // never returns (it `_exit`s).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: as above.
            unsafe { serve(theirs.as_raw_fd(), parent, &maps, &o) };
        }
        drop(theirs);
        let h = Helper {
            sock: Mutex::new(ours),
        };
        h.request()
            .map(|_| h)
            .map_err(|e| format!("no private tmpfs through a user namespace: {e}"))
    }

    /// Ask for one mount; its descriptor comes back as SCM_RIGHTS.
    fn request(&self) -> io::Result<OwnedFd> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: a one-byte write from a live buffer.
        if unsafe { libc::write(sock.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
        let mut byte = [0u8; 1];
        let mut iov = [io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut got = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just gave us this descriptor.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    got.get_or_insert(fd);
                }
            }
        }
        match (msg.bytes, got) {
            (1, Some(fd)) => Ok(fd),
            (0, _) => Err(io::Error::other("the tmpfs helper is gone")),
            _ => Err(io::Error::other(format!(
                "the tmpfs helper could not mount (errno {})",
                byte[0]
            ))),
        }
    }
}

/// The helper: enter a user and mount namespace, then answer each byte on
/// `sock` with a new mount (or a byte holding the errno) until the parent
/// goes. Runs in a child forked from a threaded process: syscalls only.
unsafe fn serve(
    sock: libc::c_int,
    parent: libc::pid_t,
    maps: &[(&std::ffi::CStr, CString); 3],
    o: &Options,
) -> ! {
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        // Nothing of the parent's stays open here but the socket.
        libc::syscall(libc::SYS_close_range, 0u32, (sock - 1) as u32, 0u32);
        libc::syscall(libc::SYS_close_range, (sock + 1) as u32, u32::MAX, 0u32);
        let mut status: u8 = 0;
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) < 0 {
            status = errno();
        }
        for (path, data) in maps {
            if status != 0 {
                break;
            }
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let len = data.as_bytes().len();
            if fd < 0 || libc::write(fd, data.as_ptr().cast(), len) != len as isize {
                status = errno();
            }
            if fd >= 0 {
                libc::close(fd);
            }
        }
        let mut byte = [0u8; 1];
        while libc::read(sock, byte.as_mut_ptr().cast(), 1) == 1 {
            let made = if status == 0 {
                mount(o).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO) as u8)
            } else {
                Err(status)
            };
            match made {
                Ok(fd) => send_fd(sock, fd.as_raw_fd()),
                Err(e) => {
                    let e = e.max(1);
                    libc::write(sock, (&e as *const u8).cast(), 1);
                }
            }
        }
        libc::_exit(0)
    }
}

fn errno() -> u8 {
    (io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO) as u8)
        .max(1)
}

/// One byte with `fd` attached, from a stack buffer.
unsafe fn send_fd(sock: libc::c_int, fd: libc::c_int) {
    unsafe {
        let mut one = 1u8;
        let mut iov = libc::iovec {
            iov_base: (&mut one as *mut u8).cast(),
            iov_len: 1,
        };
        // Room for one cmsghdr and one int, aligned as a cmsghdr.
        let mut buf = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd);
        libc::sendmsg(sock, &msg, 0);
    }
}
