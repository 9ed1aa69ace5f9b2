#!/usr/bin/env bash
# The mutation-repair bench: `selfrepair fix --model mutate` on one injected
# bug per case, over small real PyPI projects (sdists pinned by sha256), our
# classic one-line-bug programs and the bundled Python examples. Prints a
# table (case, kind, fixed, attempts, wall s, correct/plausible) and a
# summary line. What each case is, and the scoring: docs/bench-mutate.md.
#
#   cargo build --release
#   scripts/bench_mutate.sh                        # every case (about 15-25 min on 2 cores)
#   ONLY=classic,toolz scripts/bench_mutate.sh     # cases whose id contains a word
#   scripts/bench_mutate.sh --check                # validate the cases (no selfrepair)
#   scripts/bench_mutate.sh --list
#
# SELFREPAIR_BIN  the binary (default: target/release/selfrepair, or under CARGO_TARGET_DIR)
# CACHE           where the sdists are kept (default ~/.cache/selfrepair/bench-mutate);
#                 fetched once from files.pythonhosted.org, sha256-checked, refused on mismatch
# OFFLINE=1       never download (fail if an sdist is not cached)
# CASE_TIMEOUT    wall limit of one `selfrepair fix` run, seconds (default 300)
# MAX_ATTEMPTS    --max-attempts (default 200, the mutation repairer's default cap)
# FIX_ARGS        extra arguments for every `selfrepair fix` run (e.g. --allow-network)
# OUT             also write the results as JSON to this file
# WORK            keep the prepared repositories and logs here (default: a temp dir, removed)
# BENCH_PYTHON    the Python that judges a fix (default: the one selfrepair chose)
# Other flags go to benches/mutate/run.py (--markdown, --keep, --help).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export SELFREPAIR_BIN=${SELFREPAIR_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/selfrepair}
exec python3 "$here/benches/mutate/run.py" "$@"
