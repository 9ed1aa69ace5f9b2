"""selfrepair's per-test line coverage, for fault localisation.

Loaded into pytest with ``-p selfrepair_cover`` in the jail. For every test
it records which lines of the project's own files ran (setup, call and
teardown), and writes ``{"tests": {nodeid: {"outcome": ..., "lines":
{file: [line, ...]}}}}`` to ``$SELFREPAIR_COVER_OUT`` at the end. The host
treats that file as untrusted: it only orders mutants, never judges one.

Python 3.12+ uses ``sys.monitoring`` (each line reported once per test, then
disabled until the next test); older ones ``sys.settrace``.
"""

import json
import os
import sys
import threading

import pytest

_OUT = os.environ.get("SELFREPAIR_COVER_OUT")
_ROOT = os.path.realpath(os.environ.get("SELFREPAIR_COVER_ROOT") or os.getcwd())
_SKIP_PARTS = ("site-packages", "dist-packages", ".venv", "node_modules", ".selfrepair")

_files = {}
_hits = set()
_tests = {}
_outcomes = {}


def _rel(filename):
    """The project-relative path of a source file, or None to ignore it."""
    r = _files.get(filename, False)
    if r is not False:
        return r
    r = None
    if filename and not filename.startswith("<"):
        real = os.path.realpath(filename)
        if real.startswith(_ROOT + os.sep):
            rel = real[len(_ROOT) + 1 :]
            if not any(p in rel.split(os.sep) for p in _SKIP_PARTS):
                r = rel
    _files[filename] = r
    return r


if sys.version_info >= (3, 12):
    _mon = sys.monitoring
    _TOOL = next(
        (t for t in (_mon.COVERAGE_ID, 4, 5) if _mon.get_tool(t) is None), None
    )

    def _line(code, line):
        rel = _rel(code.co_filename)
        if rel is not None:
            _hits.add((rel, line))
        return _mon.DISABLE

    def _start():
        if _TOOL is None:
            return
        if _mon.get_tool(_TOOL) is None:
            _mon.use_tool_id(_TOOL, "selfrepair")
            _mon.register_callback(_TOOL, _mon.events.LINE, _line)
            _mon.set_events(_TOOL, _mon.events.LINE)
        _mon.restart_events()

    def _stop():
        pass

else:

    def _local(frame, event, arg):
        if event == "line":
            rel = _rel(frame.f_code.co_filename)
            if rel is not None:
                _hits.add((rel, frame.f_lineno))
        return _local

    def _global(frame, event, arg):
        # The call event's line is the `def`: only executed lines count.
        if _rel(frame.f_code.co_filename) is None:
            return None
        return _local

    def _start():
        threading.settrace(_global)
        sys.settrace(_global)

    def _stop():
        sys.settrace(None)
        threading.settrace(None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _hits.clear()
    _start()
    try:
        yield
    finally:
        _stop()
    by_file = {}
    for f, l in _hits:
        by_file.setdefault(f, []).append(l)
    for v in by_file.values():
        v.sort()
    _tests[item.nodeid] = {
        "outcome": _outcomes.get(item.nodeid, "passed"),
        "lines": by_file,
    }
    _hits.clear()


def pytest_runtest_logreport(report):
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and report.when != "teardown":
        _outcomes.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session, exitstatus):
    _stop()
    if not _OUT:
        return
    tmp = _OUT + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "tests": _tests}, f)
    os.replace(tmp, _OUT)
