#!/usr/bin/env python3
"""What each namespace adds to a fork, as the fork server pays it per run.

    sudo /usr/bin/python3 scripts/bench_namespaces.py [N]

Forks N children (default 100) per row; each unshares the namespaces named
and exits (with the pid namespace, after forking the namespace's pid 1, as
the server's intermediate does). Prints the mean milliseconds per child.
Needs root (or a user namespace for the unprivileged case, not measured here).
"""
import ctypes
import os
import sys
import time

NEWNS, NEWUTS, NEWIPC, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def per_child_ms(flags, n):
    t = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            if flags and libc.unshare(flags) != 0:
                os._exit(3)
            if flags & NEWPID:
                init = os.fork()
                if init == 0:
                    os._exit(0)
                os.waitpid(init, 0)
            os._exit(0)
        _, st = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(st) != 0:
            sys.exit("unshare failed: run as root")
    return (time.perf_counter() - t) / n * 1e3


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rows = [("fork only", 0), ("pid (+ its pid 1)", NEWPID), ("ipc", NEWIPC), ("uts", NEWUTS),
            ("mount", NEWNS), ("net", NEWNET), ("all five", NEWNS | NEWUTS | NEWIPC | NEWPID | NEWNET)]
    for name, flags in rows:
        print("%-18s %6.2f ms" % (name, per_child_ms(flags, n)))


main()
