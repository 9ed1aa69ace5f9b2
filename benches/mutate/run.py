#!/usr/bin/env python3
"""The mutation-repair bench: `selfrepair fix --model mutate` on injected bugs.

Each case of projects.toml is a clean project (an sdist from PyPI pinned by
sha256, one of our classic programs, or a bundled example) with one bug
injected and committed as HEAD. The bench runs

    $SELFREPAIR_BIN fix DIR --model mutate --json --max-attempts N

on it, reads the JSON events, and scores the outcome:

- fixed: the session's outcome is "fixed";
- correct: the winning diff is the bug's exact inverse (the fixed file is
  byte for byte the clean one), or, applied in a scratch copy, it passes the
  project's tests and the case's held-back test file; otherwise plausible.

Standard library only (Python 3.11+). See docs/bench-mutate.md.

    python3 benches/mutate/run.py                 # every case
    python3 benches/mutate/run.py --only classic  # ids containing "classic"
    python3 benches/mutate/run.py --check         # validate the cases, no selfrepair
    python3 benches/mutate/run.py --list
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import shlex
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HELDBACK_NAME = "test_heldback_bench.py"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- spec


def load_spec(path):
    with open(path, "rb") as f:
        spec = tomllib.load(f)
    projects = {p["name"]: p for p in spec.get("project", [])}
    cases = spec.get("case", [])
    seen = set()
    for c in cases:
        if c["id"] in seen:
            raise BenchError(f"duplicate case id {c['id']}")
        seen.add(c["id"])
        if c["project"] not in projects:
            raise BenchError(f"case {c['id']}: unknown project {c['project']}")
    return projects, cases


def select(cases, only):
    if not only:
        return cases
    words = [w for w in only.split(",") if w]
    return [c for c in cases if any(w in c["id"] for w in words)]


# ---------------------------------------------------------------- fetching and preparing


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def fetch(project, cache, offline):
    """The sdist of a pypi project in the cache, fetched once; sha256-checked."""
    url, want = project["sdist"], project["sha256"]
    os.makedirs(cache, exist_ok=True)
    dest = os.path.join(cache, os.path.basename(url))
    if not os.path.exists(dest):
        if offline:
            raise BenchError(f"{project['name']}: {dest} is not cached and OFFLINE is set")
        part = dest + ".part"
        print(f"fetching {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=120) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
        got = sha256_of(part)
        if got != want:
            os.unlink(part)
            raise BenchError(f"{project['name']}: sha256 mismatch for {url}: got {got}, pinned {want}; refused")
        os.replace(part, dest)
    got = sha256_of(dest)
    if got != want:
        raise BenchError(f"{project['name']}: sha256 mismatch for the cached {dest}: got {got}, pinned {want}; "
                         "refused (delete the file to fetch it again)")
    return dest


def copy_ignore(src, names):
    return [n for n in names if n in ("__pycache__", ".pytest_cache", "heldback.py")]


def clean_tree(project, cache, work, offline):
    """A directory holding the project's clean tree (shared by its cases; never modified)."""
    dest = os.path.join(work, "src", project["name"])
    if os.path.isdir(dest):
        return dest
    kind = project["kind"]
    if kind == "pypi":
        archive = fetch(project, cache, offline)
        unpack = dest + ".unpack"
        shutil.rmtree(unpack, ignore_errors=True)
        os.makedirs(unpack)
        with tarfile.open(archive) as tf:
            tf.extractall(unpack, filter="data")
        os.replace(os.path.join(unpack, project["root"]), dest)
        shutil.rmtree(unpack)
    elif kind in ("classic", "bundled"):
        shutil.copytree(os.path.join(REPO, project["path"]), dest, ignore=copy_ignore)
    else:
        raise BenchError(f"{project['name']}: unknown kind {kind}")
    for rel, text in project.get("generated", {}).items():
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return dest


def replace_once(path, old, new, what):
    with open(path) as f:
        text = f.read()
    n = text.count(old)
    if n != 1:
        raise BenchError(f"{what}: the text to replace occurs {n} times in {path}, not once")
    text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)
    return text


def git(cwd, *args, check=True):
    env = dict(os.environ, **GIT_ENV)
    r = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false",
                        "-c", "init.defaultBranch=main", *args],
                       cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise BenchError(f"git {' '.join(args)} in {cwd}: {r.stderr.strip()}")
    return r


def prepare(case, project, src, dest):
    """Copy the clean tree to dest, commit it, inject the bug, commit that as HEAD.

    Returns the clean text of the bug's file."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)
    path = os.path.join(dest, case["file"])
    if project["kind"] == "bundled":
        # the example ships with its bug: undo it to get the clean project
        replace_once(path, case["buggy"], case["original"], case["id"] + " (undoing the shipped bug)")
    with open(path) as f:
        clean = f.read()
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", f"{project['name']}: clean")
    for rel in project.get("generated", {}):
        r = git(dest, "check-ignore", "-q", rel, check=False)
        if r.returncode != 0:
            raise BenchError(f"{project['name']}: generated file {rel} is not ignored by git")
    replace_once(path, case["original"], case["buggy"], case["id"])
    git(dest, "commit", "-q", "-a", "-m", f"{case['id']}: inject the bug")
    status = git(dest, "status", "--porcelain").stdout.strip()
    if status:
        raise BenchError(f"{case['id']}: the work copy is not clean after the bug commit:\n{status}")
    return clean


# ---------------------------------------------------------------- running things


def run_killable(cmd, cwd, timeout, stdout, stderr, env=None):
    """Run cmd in its own process group; kill the whole group on timeout.

    Returns (exit code or None on timeout, wall seconds)."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=stderr, env=env,
                         start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        rc = None
    return rc, time.monotonic() - start


_pytest_env_cache = {}


def pytest_env(python):
    """An environment in which `python -m pytest` works: the interpreter's own
    pytest, else the pinned one selfrepair provides ($SELFREPAIR_HOME/tools)."""
    if python in _pytest_env_cache:
        return _pytest_env_cache[python]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    ok = subprocess.run([python, "-c", "import pytest"], env=env, capture_output=True).returncode == 0
    if not ok:
        home = os.environ.get("SELFREPAIR_HOME") or os.path.expanduser("~/.cache/selfrepair")
        found = sorted(glob.glob(os.path.join(home, "tools", "pytest-*")))
        if not found:
            raise BenchError(f"{python} has no pytest and selfrepair's is not in {home}/tools: "
                             "run `selfrepair setup` (or set BENCH_PYTHON to a Python with pytest)")
        env["PYTHONPATH"] = found[-1]
    _pytest_env_cache[python] = env
    return env


def run_pytest(python, cwd, args, timeout, log):
    env = pytest_env(python)
    with open(log, "w") as out:
        rc, wall = run_killable([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                                cwd, timeout, out, subprocess.STDOUT, env)
    with open(log) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    tail = lines[-1] if lines else ""
    if rc is None:
        tail = f"timed out after {timeout} s"
    return rc == 0, tail, wall


def held_back(case, dest):
    """Copy the case's held-back test file into dest; return its name there."""
    shutil.copyfile(os.path.join(HERE, case["heldback"]), os.path.join(dest, HELDBACK_NAME))
    return HELDBACK_NAME


# ---------------------------------------------------------------- one case


def read_events(path):
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"event": "unparsed", "text": line[:300]})
    return events


def judge(case, project, dest, clean, done, args, python, logdir):
    """'correct (inverse)', 'correct (tests + held-back)' or 'plausible: ...'."""
    files = (done.get("diff") or {}).get("files") or []
    if len(files) == 1 and files[0].get("path") == case["file"] and files[0].get("new") == clean:
        return "correct", "inverse"
    scratch = dest + ".scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(dest, scratch, symlinks=True)
    r = subprocess.run([args.bin, "diff", dest], capture_output=True, text=True)
    diff = r.stdout if r.returncode == 0 and r.stdout.strip() else (done.get("diff") or {}).get("unified", "")
    a = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=scratch, input=diff,
                       capture_output=True, text=True)
    if a.returncode != 0:
        return "plausible", "the winning diff does not apply: " + a.stderr.strip()[:200]
    ok, tail, _ = run_pytest(python, scratch, [], args.check_timeout, os.path.join(logdir, "judge-tests.log"))
    if not ok:
        return "plausible", "project tests: " + tail
    name = held_back(case, scratch)
    ok, tail, _ = run_pytest(python, scratch, [name], args.check_timeout, os.path.join(logdir, "judge-heldback.log"))
    if not ok:
        return "plausible", "held-back test: " + tail
    shutil.rmtree(scratch, ignore_errors=True)
    return "correct", "tests + held-back"


def run_case(case, projects, args, work):
    project = projects[case["project"]]
    src = clean_tree(project, args.cache, work, args.offline)
    logdir = os.path.join(work, "cases", case["id"])
    os.makedirs(logdir, exist_ok=True)
    dest = os.path.join(logdir, "repo")
    clean = prepare(case, project, src, dest)
    cmd = [args.bin, "fix", dest, "--model", "mutate", "--json",
           "--max-attempts", str(args.max_attempts), *project.get("args", []), *shlex.split(args.fix_args or "")]
    out_path, err_path = os.path.join(logdir, "events.jsonl"), os.path.join(logdir, "stderr.txt")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        rc, wall = run_killable(cmd, dest, args.timeout, out, err)
    events = read_events(out_path)
    done = next((e for e in reversed(events) if e.get("event") == "done"), None)
    plan = next((e for e in events if e.get("event") == "plan"), {})
    result = {
        "id": case["id"], "project": project["name"], "group": project["kind"],
        "kind": case["kind"], "single_token": case.get("single_token", True), "file": case["file"], "command": cmd,
        "exit_code": rc, "wall_s": round(wall, 2), "fixed": False,
        "attempts": None, "outcome": None, "reason": None, "verdict": None,
        "verdict_detail": None, "winner": None, "python": (plan.get("python") or {}).get("python"),
        "baseline_failures": None, "logs": logdir,
    }
    base = next((e for e in events if e.get("event") == "test_run_finished" and e.get("attempt") == 0), None)
    if base:
        result["baseline_s"] = round((base.get("run") or {}).get("duration_ms", 0) / 1000, 2)
    result["attempts_seen"] = sum(e.get("event") == "patch" for e in events)
    if rc is None:
        result["outcome"] = "timeout"
        result["reason"] = (f"no result within the bench's {args.timeout} s limit "
                            f"({result['attempts_seen']} attempts made)")
    elif done is None:
        err = open(err_path, errors="replace").read().strip().splitlines()
        result["outcome"] = "error"
        result["reason"] = (err[-1] if err else f"exit {rc}, no done event")[:300]
    else:
        result["outcome"] = done.get("outcome")
        result["reason"] = done.get("reason")
        result["attempts"] = done.get("attempts")
        result["winning_attempt"] = done.get("winning_attempt")
        result["baseline_failures"] = len(done.get("initial_failures") or [])
        result["duration_ms"] = done.get("duration_ms")
        if done.get("outcome") == "fixed":
            result["fixed"] = True
            win = done.get("winning_attempt")
            patch = next((e for e in events if e.get("event") == "patch" and e.get("attempt") == win), {})
            result["winner"] = patch.get("description") or done.get("reason")
            python = args.python or result["python"] or "python3"
            result["verdict"], result["verdict_detail"] = judge(case, project, dest, clean, done, args, python, logdir)
    if not args.keep:
        shutil.rmtree(dest, ignore_errors=True)
    return result


# ---------------------------------------------------------------- check mode


def check_case(case, projects, args, work):
    """Clean tests pass, the bug makes them fail, the held-back test passes
    on the clean project and (ideally) fails on the bug."""
    project = projects[case["project"]]
    python = args.python or "python3"
    src = clean_tree(project, args.cache, work, args.offline)
    logdir = os.path.join(work, "check", case["id"])
    os.makedirs(logdir, exist_ok=True)
    dest = os.path.join(logdir, "repo")
    prepare(case, project, src, dest)
    row = {"id": case["id"]}
    git(dest, "checkout", "-q", "HEAD~1")
    row["clean_tests"] = run_pytest(python, dest, [], args.check_timeout, os.path.join(logdir, "clean.log"))[:2]
    name = held_back(case, dest)
    row["clean_heldback"] = run_pytest(python, dest, [name], args.check_timeout, os.path.join(logdir, "clean-hb.log"))[:2]
    os.unlink(os.path.join(dest, name))
    git(dest, "checkout", "-q", "main")
    short = min(args.check_timeout, 20)
    row["buggy_tests"] = run_pytest(python, dest, [], short, os.path.join(logdir, "buggy.log"))[:2]
    name = held_back(case, dest)
    row["buggy_heldback"] = run_pytest(python, dest, [name], short, os.path.join(logdir, "buggy-hb.log"))[:2]
    problems = []
    if not row["clean_tests"][0]:
        problems.append("clean project's tests fail")
    if not row["clean_heldback"][0]:
        problems.append("held-back test fails on the clean project")
    if row["buggy_tests"][0]:
        problems.append("the bug does not fail the project's tests")
    if row["buggy_heldback"][0]:
        problems.append("(warning) the held-back test passes on the bug")
    row["problems"] = problems
    if not args.keep:
        shutil.rmtree(dest, ignore_errors=True)
    return row


# ---------------------------------------------------------------- reporting


def fmt_row(cols, widths):
    return "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)).rstrip()


def summarize(results, max_attempts):
    n = len(results)
    fixed = [r for r in results if r["fixed"]]
    attempts = [r["attempts"] for r in fixed if r["attempts"] is not None]
    # The attempt that became the fix (the runners-up tried after it are
    # in `attempts`).
    winning = [r["winning_attempt"] for r in fixed if r.get("winning_attempt") is not None]
    walls = [r["wall_s"] for r in fixed]
    single = [r for r in results if r.get("single_token", True)]
    s = {
        "cases": n,
        "single_token_cases": len(single),
        "single_token_fixed": sum(r["fixed"] for r in single),
        "single_token_fixed_pct": round(100.0 * sum(r["fixed"] for r in single) / len(single), 1) if single else 0.0,
        "fixed": len(fixed),
        "fixed_pct": round(100.0 * len(fixed) / n, 1) if n else 0.0,
        "median_attempts_fixed": statistics.median(attempts) if attempts else None,
        "median_winning_attempt": statistics.median(winning) if winning else None,
        "median_wall_s_fixed": round(statistics.median(walls), 2) if walls else None,
        "median_wall_s_all": round(statistics.median(r["wall_s"] for r in results), 2) if results else None,
        "total_wall_s": round(sum(r["wall_s"] for r in results), 1),
        "correct": sum(r["verdict"] == "correct" for r in results),
        "correct_inverse": sum(r["verdict_detail"] == "inverse" for r in results),
        "plausible": sum(r["verdict"] == "plausible" for r in results),
        "max_attempts": max_attempts,
    }
    by_group = {}
    for r in results:
        g = by_group.setdefault(r["group"], {"cases": 0, "fixed": 0, "correct": 0})
        g["cases"] += 1
        g["fixed"] += r["fixed"]
        g["correct"] += r["verdict"] == "correct"
    s["by_group"] = by_group
    return s


def print_results(results, summary, markdown):
    head = ["case", "kind", "fixed", "attempts", "wall s", "verdict", "winner / reason"]
    rows = []
    for r in results:
        verdict = "-"
        if r["verdict"]:
            verdict = r["verdict"] + (f" ({r['verdict_detail']})" if r["verdict"] == "correct" else "")
        note = r["winner"] if r["fixed"] else f"{r['outcome']}: {r['reason']}"
        if r["verdict"] == "plausible":
            note = f"{r['winner']}; {r['verdict_detail']}"
        rows.append([r["id"], r["kind"], "yes" if r["fixed"] else "no",
                     r["attempts"] if r["attempts"] is not None
                     else (f"{r['attempts_seen']}+" if r.get("attempts_seen") else "-"),
                     f"{r['wall_s']:.1f}", verdict, (note or "")[:110]])
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        widths[-1] = 0
        print(fmt_row(head, widths))
        for row in rows:
            print(fmt_row(row, widths))
    s = summary
    print()
    print(f"fixed {s['fixed']}/{s['cases']} ({s['fixed_pct']}%) within {s['max_attempts']} attempts; "
          f"median {s['median_attempts_fixed']} attempts (the fix found at attempt {s.get('median_winning_attempt')}) "
          f"and {s['median_wall_s_fixed']} s wall per fix "
          f"({s['median_wall_s_all']} s over all cases, {s['total_wall_s']} s in all); "
          f"correct {s['correct']} ({s['correct_inverse']} the exact inverse), plausible {s['plausible']}")
    print(f"single-token bugs: {s['single_token_fixed']}/{s['single_token_cases']} fixed ({s['single_token_fixed_pct']}%)")
    print("by group: " + ", ".join(f"{g} {v['fixed']}/{v['cases']} fixed, {v['correct']} correct"
                                   for g, v in s["by_group"].items()))


# ---------------------------------------------------------------- main


def main():
    default_bin = os.environ.get("SELFREPAIR_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "selfrepair")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=default_bin, help="selfrepair binary (SELFREPAIR_BIN; default target/release/selfrepair)")
    ap.add_argument("--spec", default=os.path.join(HERE, "projects.toml"))
    ap.add_argument("--cache", default=os.environ.get("CACHE") or os.path.expanduser("~/.cache/selfrepair/bench-mutate"),
                    help="where sdists are kept (CACHE)")
    ap.add_argument("--work", default=os.environ.get("WORK"), help="work directory (WORK; default a temp dir, removed)")
    ap.add_argument("--only", default=os.environ.get("ONLY"), help="comma-separated substrings of case ids (ONLY)")
    ap.add_argument("--max-attempts", type=int, default=int(os.environ.get("MAX_ATTEMPTS", "200")))
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("CASE_TIMEOUT", "300")),
                    help="wall limit of one `selfrepair fix` run, seconds (CASE_TIMEOUT)")
    ap.add_argument("--check-timeout", type=int, default=60, help="limit of one pytest run when judging or checking")
    ap.add_argument("--python", default=os.environ.get("BENCH_PYTHON"),
                    help="Python for judging/checking (BENCH_PYTHON; default the one selfrepair chose, python3 for --check)")
    ap.add_argument("--fix-args", default=os.environ.get("FIX_ARGS"),
                    help="extra arguments for every `selfrepair fix` run, e.g. '--allow-network' (FIX_ARGS)")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="write the results as JSON here (OUT)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--keep", action="store_true", help="keep the prepared repositories")
    ap.add_argument("--offline", action="store_true", default=bool(os.environ.get("OFFLINE")),
                    help="never download; fail if an sdist is not cached (OFFLINE)")
    ap.add_argument("--check", action="store_true", help="validate the cases instead of running selfrepair")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--report", metavar="RESULTS_JSON", help="print the table of a saved OUT file again")
    args = ap.parse_args()

    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        kinds = {c["id"]: c.get("single_token", True) for c in load_spec(args.spec)[1]}
        for r in saved["results"]:
            r.setdefault("attempts_seen", None)
            r.setdefault("single_token", kinds.get(r["id"], True))
        print_results(saved["results"], summarize(saved["results"], saved["summary"]["max_attempts"]), args.markdown)
        return 0

    projects, cases = load_spec(args.spec)
    cases = select(cases, args.only)
    if not cases:
        raise BenchError(f"no case matches {args.only!r}")
    if args.list:
        for c in cases:
            p = projects[c["project"]]
            print(f"{c['id']:34} {p['kind']:8} {c['kind']:42} {c['file']}")
        return 0

    own_work = args.work is None
    work = args.work or tempfile.mkdtemp(prefix="bench-mutate-")
    os.makedirs(work, exist_ok=True)
    try:
        if args.check:
            bad = 0
            for c in cases:
                row = check_case(c, projects, args, work)
                hard = [p for p in row["problems"] if not p.startswith("(warning)")]
                bad += bool(hard)
                print(f"{row['id']:34} clean {row['clean_tests'][1][:40]:40} | buggy {row['buggy_tests'][1][:40]:40} "
                      f"| held-back clean {'pass' if row['clean_heldback'][0] else 'FAIL'}, "
                      f"buggy {'pass' if row['buggy_heldback'][0] else 'fail'}"
                      + (f"  <-- {'; '.join(row['problems'])}" if row["problems"] else ""), flush=True)
            print(f"{len(cases) - bad}/{len(cases)} cases valid")
            return 1 if bad else 0

        if not os.access(args.bin, os.X_OK):
            raise BenchError(f"no selfrepair binary at {args.bin} (build it with `cargo build --release`, or set SELFREPAIR_BIN)")
        version = subprocess.run([args.bin, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"# {version} ({args.bin}); {len(cases)} cases; --max-attempts {args.max_attempts}; "
              f"{args.timeout} s limit per case; work in {work}", flush=True)
        results = []
        for c in cases:
            r = run_case(c, projects, args, work)
            results.append(r)
            status = "fixed" if r["fixed"] else r["outcome"]
            print(f"  {r['id']:34} {status:9} attempts {r['attempts'] if r['attempts'] is not None else '-':>4}  "
                  f"{r['wall_s']:6.1f} s  {r['verdict'] or ''}", flush=True)
        summary = summarize(results, args.max_attempts)
        print()
        print_results(results, summary, args.markdown)
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"binary": args.bin, "version": version, "summary": summary, "results": results}, f, indent=1)
            print(f"results in {args.out}")
        return 0
    finally:
        if own_work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench-mutate: {e}", file=sys.stderr)
        sys.exit(2)
