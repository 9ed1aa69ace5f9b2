"""Reference times: run each task's canonical solution on its own tests once,
natively, and print how long the tests took (seconds), or null where the
solution raised or ran past the limit. Only a scorer's routing reads these
(which sandbox runs a suite first); no verdict does.

Runs in the process sandbox; reads one JSON request on stdin, writes one JSON
object on stdout. The programs' own output goes nowhere.
"""

import io
import json
import signal
import sys
import time

if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)


class Over(BaseException):
    pass


def over(*_):
    raise Over()


def timed(task, limit):
    g = {"__name__": "__main__"}
    # The limit covers the program's own top level too; only the tests' part is timed.
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        exec(compile(task["setup"], "<setup>", "exec"), g)
        exec(compile(task["program"], "<canonical>", "exec"), g)
        tests = compile(task["tests"], "<tests>", "exec")
        start = time.perf_counter()
        exec(tests, g)
        if task["entry_point"] is not None:
            g["check"](g[task["entry_point"]])
        return time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main():
    req = json.load(sys.stdin)
    out = sys.stdout
    signal.signal(signal.SIGALRM, over)
    times = {}
    for task in req["tasks"]:
        sys.stdout = sys.stderr = io.StringIO()
        try:
            times[task["id"]] = timed(task, req["limit"])
        except BaseException:
            times[task["id"]] = None
        finally:
            sys.stdout, sys.stderr = out, sys.__stderr__
    out.write(json.dumps(times))
    out.flush()


main()
