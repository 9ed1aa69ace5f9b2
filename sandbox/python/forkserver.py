"""selfrepair's fork server for the process sandbox.

Starting python3 and loading the harness costs ~11 ms; forking a started
interpreter costs well under 1 ms. This process loads the harness once and
never runs a program itself: for each run it forks, and the child applies
the same per-run layers as the Rust jail (fresh namespaces, private tmpfs,
rlimits, a dedicated uid, Landlock, seccomp) before the harness reads the
run's request. So every run still starts from this pristine state, in fresh
namespaces, and no run can see another's data: requests go straight from
the host to the run's own stdin, never through here.

Protocol. stdin: one marshalled init record (harness code, seccomp filters,
constants), then EOF. fd 3: a SOCK_SEQPACKET socket; each message is one
run's marshalled plan with five fds: the run's stdin, stdout, stderr, a
status pipe and a kill pipe. On the status pipe the intermediate writes
`P<pid>` (the run's process group), then `X<code>` when the program's pid 1
ends, or `E<reason>` when a layer could not be applied. A byte on the kill
pipe (or its closing: the host is gone) makes the intermediate kill pid 1,
and with it everything in the run's pid namespace, whatever process group or
session it moved to. An empty message (EOF) ends the server.
"""

import binascii
import ctypes
import marshal
import os
import resource
import select
import signal
import socket
import sys


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("fs", ctypes.c_uint64),
        ("net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Jail:
    """The per-run layers, with constants and filters computed by the host."""

    def __init__(self, init):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.k = init["consts"]
        # Kept alive for the server's lifetime: the fprogs point into them.
        self._bufs = [ctypes.create_string_buffer(binascii.unhexlify(f))
                      for f in init["seccomp"]]
        self.filters = [_Fprog(len(b.raw) // 8, ctypes.addressof(b))
                        for b in self._bufs]

    def _check(self, rc, what):
        if rc < 0:
            e = ctypes.get_errno()
            raise OSError(e, "%s: %s" % (what, os.strerror(e)))
        return rc

    def namespaces(self, plan):
        flags = plan["ns_flags"]
        if not flags:
            return
        self._check(self.libc.unshare(ctypes.c_int(flags)), "unshare")
        if plan["user_ns"]:
            for name, text in (("setgroups", "deny"),
                               ("uid_map", "0 %d 1" % plan["real_uid"]),
                               ("gid_map", "0 %d 1" % plan["real_gid"])):
                with open("/proc/self/" + name, "w") as f:
                    f.write(text)

    def confine(self, plan):
        k, libc = self.k, self.libc
        if plan["ns_flags"] & k["CLONE_NEWNS"]:
            self._check(libc.mount(None, b"/", None,
                                   ctypes.c_ulong(k["MS_REC"] | k["MS_PRIVATE"]), None),
                        "make / private")
            if plan["tmpfs_bytes"] is not None:
                owner = plan["uid"] if plan["uid"] is not None else 0
                opts = "size=%d,nr_inodes=%d,mode=0700,uid=%d,gid=%d" % (
                    plan["tmpfs_bytes"], plan["tmpfs_inodes"], owner, owner)
                self._check(libc.mount(b"tmpfs", plan["workdir"].encode(), b"tmpfs",
                                       ctypes.c_ulong(k["MS_NOSUID"] | k["MS_NODEV"]),
                                       opts.encode()),
                            "mount tmpfs work dir")
            # Where host pathname sockets live: an empty read-only tmpfs over each.
            hide_flags = k["MS_NOSUID"] | k["MS_NODEV"] | k["MS_NOEXEC"] | k["MS_RDONLY"]
            for d in plan["hide"]:
                self._check(libc.mount(b"tmpfs", d.encode(), b"tmpfs", ctypes.c_ulong(hide_flags),
                                       k["HIDE_OPTS"].encode()),
                            "hide " + d)
            # Every host mount read-only and nosuid, but the work dir's tmpfs.
            self._setattr(b"/", 0x8000, k["MOUNT_ATTR_RDONLY"] | k["MOUNT_ATTR_NOSUID"], 0)
            self._setattr(plan["workdir"].encode(), 0, 0, k["MOUNT_ATTR_RDONLY"])
        os.chdir(plan["workdir"])
        for res, v in plan["rlimits"]:
            resource.setrlimit(res, (v, v))
        # No capability survives, whatever the uid (see layers.rs).
        self._check(libc.prctl(28, ctypes.c_ulong(k["SECUREBITS"]), 0, 0, 0), "securebits")
        for cap in range(64):
            if libc.prctl(24, ctypes.c_ulong(cap), 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                break
        self._check(libc.prctl(47, ctypes.c_ulong(4), 0, 0, 0), "clear ambient caps")
        uid = plan["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        self._check(libc.syscall(ctypes.c_long(k["SYS_capset"]), ctypes.byref(header),
                                 ctypes.byref(data)), "capset")
        # If the intermediate dies, so does pid 1, and with it the namespace.
        # Set after the uid change, which clears it.
        self._check(libc.prctl(k["PR_SET_PDEATHSIG"], int(signal.SIGKILL), 0, 0, 0), "pdeathsig")
        self._check(libc.prctl(k["PR_SET_NO_NEW_PRIVS"], 1, 0, 0, 0), "no_new_privs")
        if plan["landlock"] is not None:
            self._landlock(plan["landlock"])
        for f in self.filters:
            self._check(libc.syscall(ctypes.c_long(k["SYS_seccomp"]), ctypes.c_uint(1),
                                     ctypes.c_uint(0), ctypes.byref(f)), "seccomp")

    def _setattr(self, path, flags, attr_set, attr_clr):
        attr = (ctypes.c_uint64 * 4)(attr_set, attr_clr, 0, 0)
        self._check(self.libc.syscall(ctypes.c_long(self.k["SYS_mount_setattr"]), ctypes.c_int(-100),
                                      path, ctypes.c_uint(flags), ctypes.byref(attr),
                                      ctypes.c_size_t(32)),
                    "mount_setattr " + path.decode())

    def _landlock(self, ll):
        k, libc = self.k, self.libc
        attr = _RulesetAttr(ll["fs"], ll["net"], ll["scoped"])
        fd = self._check(libc.syscall(ctypes.c_long(k["SYS_landlock_create_ruleset"]),
                                      ctypes.byref(attr), ctypes.c_size_t(ll["attr_size"]),
                                      ctypes.c_uint32(0)),
                         "landlock ruleset")
        try:
            for path, access in ll["rules"]:
                try:
                    parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # as the landlock crate does: a missing path grants nothing
                try:
                    rule = _PathBeneath(access, parent)
                    self._check(libc.syscall(ctypes.c_long(k["SYS_landlock_add_rule"]),
                                             ctypes.c_int(fd), ctypes.c_int(1),
                                             ctypes.byref(rule), ctypes.c_uint32(0)),
                                "landlock rule for " + path)
                finally:
                    os.close(parent)
            self._check(libc.syscall(ctypes.c_long(k["SYS_landlock_restrict_self"]),
                                     ctypes.c_int(fd), ctypes.c_uint32(0)),
                        "landlock restrict")
        finally:
            os.close(fd)


def _report(fd, text):
    try:
        os.write(fd, text.encode("utf-8", "replace") + b"\n")
    except OSError:
        pass


def _supervise(pid, kill):
    """Until pid 1 (our unreaped child: its pid cannot be reused) ends, a
    byte on the kill pipe, or the host's end closing, kills it."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return  # no pidfds: just wait
    try:
        p = select.poll()
        p.register(pidfd, select.POLLIN)
        p.register(kill, select.POLLIN)
        while True:
            ready = dict(p.poll())
            if pidfd in ready:
                return
            if kill in ready:
                os.kill(pid, signal.SIGKILL)
                return
    finally:
        os.close(pidfd)


def _intermediate(jail, harness, plan, fds, group, server):
    """The forked child: new namespaces, then pid 1 runs the program."""
    stdin, stdout, stderr, status, kill = fds
    # The server ends when the host does (its socket closes); its runs end with it.
    jail.libc.prctl(jail.k["PR_SET_PDEATHSIG"], int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != server:
        os._exit(125)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)
    _report(status, "P%d" % os.getpid())
    try:
        jail.namespaces(plan)
        pid = os.fork()
    except Exception as e:
        _report(status, "E%s" % e)
        os._exit(125)
    if pid:
        # pid 1's host pid: the host reads how long it waited for a CPU.
        _report(status, "R%d" % pid)
        # Out of the run's group, so a timeout's killpg spares us to report.
        os.setpgid(0, group)
        for fd in (stdin, stdout, stderr):
            os.close(fd)
        _supervise(pid, kill)
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
        _report(status, "X%d" % (code if code >= 0 else 128 - code))
        os._exit(0)
    # pid 1 of the new namespace: when it ends, the kernel kills the rest.
    try:
        jail.confine(plan)
    except Exception as e:
        _report(status, "E%s" % e)
        os._exit(125)
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.closerange(3, 1 << 20)
    code = 0
    try:
        harness["main"]()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                code = code or 1
        os._exit(code)


def main():
    init = marshal.loads(sys.stdin.buffer.read()[1:])
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)  # fds 0-2 stay taken, so received fds never land on them
    ctl = socket.socket(fileno=3)
    harness = {"__name__": "selfrepair_harness", "__builtins__": __builtins__}
    exec(marshal.loads(binascii.unhexlify(init["harness"])), harness)
    jail = _Jail(init)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps intermediates
    group, server = os.getpgrp(), os.getpid()
    ctl.send(b"ready")
    os.dup2(null, 1)
    os.dup2(null, 2)
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 5)
        if not msg:
            return
        try:
            if len(fds) == 5:
                plan = marshal.loads(msg[1:])
                if os.fork() == 0:
                    try:
                        ctl.close()
                        _intermediate(jail, harness, plan, fds, group, server)
                    finally:
                        os._exit(125)
        except Exception:
            pass  # a bad message costs its run (the host sees no status), not the server
        for fd in fds:
            os.close(fd)


main()
