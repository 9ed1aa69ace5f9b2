#!/usr/bin/env bash
# Time `selfrepair eval --dataset humaneval+` (or `mbpp+` with DATASET=mbpp+;
# MIXED=1 adds wrong samples, see below)
# against evalplus' `evalplus.evaluate` on the same samples (the 164
# HumanEval+ or 378 MBPP+ canonical solutions in solution format, REPEAT
# times each), side by side in one run:
# wall time, peak RSS, verdict agreement (evalplus' plus verdict: base and
# plus both pass) and the ratio.
#
#   python3 -m venv /tmp/ep && /tmp/ep/bin/pip install evalplus==0.3.1
#   EVALPLUS=/tmp/ep/bin/evalplus.evaluate scripts/bench_evalplus.sh [DATA_DIR]
#
# Both tools get one untimed warm-up run first, so each has its expected
# outputs cached (evalplus under ~/.cache/evalplus, selfrepair under its
# home) and the timed runs compare scoring, not ground-truth computation.
# SELFREPAIR_BIN picks the binary (default: target/release/selfrepair).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${SELFREPAIR_DATA_DIR:-$here/../shared/datasets}}
bin=${SELFREPAIR_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/selfrepair}
evalplus=${EVALPLUS:-evalplus.evaluate}
jobs=${JOBS:-2}
repeat=${REPEAT:-1}
dataset=${DATASET:-humaneval+}
case $dataset in
    humaneval+) src=humanevalplus/HumanEvalPlus.jsonl.gz ep_name=humaneval override=HUMANEVAL_OVERRIDE_PATH ;;
    mbpp+) src=mbppplus/MbppPlus.jsonl.gz ep_name=mbpp override=MBPP_OVERRIDE_PATH ;;
    *) echo "DATASET is humaneval+ or mbpp+" >&2; exit 2 ;;
esac
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

python3 - "$data/$src" "$out" "$repeat" "$dataset" "${MIXED:-0}" "$data/humaneval/HumanEval.jsonl.gz" <<'PY'
import gzip, json, sys
src, out, repeat, dataset, mixed, original = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1", sys.argv[6]
# MIXED=1 adds wrong samples beside each canonical one: a function that
# returns None, and for HumanEval+ HumanEval's own canonical solution, which
# falls short of HumanEval+ on some 20 tasks (wrong answers, timeouts).
first = {}
if mixed and dataset == "humaneval+":
    first = {p["task_id"]: p["prompt"] + p["canonical_solution"] for p in map(json.loads, gzip.open(original, "rt"))}
with open(out + "/dataset.jsonl", "w") as plus, open(out + "/samples.jsonl", "w") as s:
    for line in gzip.open(src, "rt"):
        p = json.loads(line)
        plus.write(json.dumps(p) + "\n")
        # MBPP+'s canonical solution is a whole program; HumanEval+'s follows its prompt.
        code = p["canonical_solution"] if dataset == "mbpp+" else p["prompt"] + p["canonical_solution"]
        codes = [code]
        if mixed:
            codes.append("def %s(*args, **kwargs):\n    return None\n" % p["entry_point"])
            if p["task_id"] in first:
                codes.append(first[p["task_id"]])
        for _ in range(repeat):
            for c in codes:
                s.write(json.dumps({"task_id": p["task_id"], "solution": c}) + "\n")
PY
echo "samples: $(wc -l < "$out/samples.jsonl") in $out/samples.jsonl"

. "$here/scripts/measure.sh"

export "$override=$out/dataset.jsonl"
# Judge with the installed evalplus' floor on each input's time limit (1 s in
# 0.3.1, 4 s since 2025-04), so that slow samples get the same limits.
ep_python=$(head -1 "$(command -v "$evalplus")" | sed 's/^#!//')
floor=$("$ep_python" -c 'from evalplus.config import DEFAULT_MIN_TIME_LIMIT as m; print(m)' 2>/dev/null ||
    "$ep_python" -c 'from evalplus.eval import DEFAULT_MIN_TIME_LIMIT as m; print(m)')
echo "evalplus' floor on each input's time limit: $floor s"
ep=("$evalplus" --dataset "$ep_name" --parallel "$jobs" --i-just-wanna-run --samples)
sr=(env SELFREPAIR_DATA_DIR="$data" "$bin" eval --dataset "$dataset" -j "$jobs" --min-time-limit "$floor" --quiet)
cp "$out/samples.jsonl" "$out/warm-ep.jsonl"
cp "$out/samples.jsonl" "$out/warm-sr.jsonl"
"${ep[@]}" "$out/warm-ep.jsonl" > /dev/null 2>&1
"${sr[@]}" "$out/warm-sr.jsonl" > /dev/null 2>&1
cp "$out/samples.jsonl" "$out/ep.jsonl"
cp "$out/samples.jsonl" "$out/sr.jsonl"
# evalplus writes its results, then waits at exit for its stuck-sample
# watchdog, a thread that sleeps in 20 s steps: its wall time is rounded up
# towards the next 20 s. The results file's time is its last verdict.
date +%s.%N > "$out/evalplus.start"
measure evalplus "${ep[@]}" "$out/ep.jsonl"
measure selfrepair "${sr[@]}" "$out/sr.jsonl"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def secs(label):
    parts = open("%s/%s.wall" % (out, label)).read().strip().split(":")
    return sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts)))
ref = json.load(open(out + "/ep_eval_results.json"))["eval"]
# evalplus keeps each task's samples in file order.
theirs = []
order = [json.loads(l)["task_id"] for l in open(out + "/ep.jsonl")]
seen = {}
for tid in order:
    i = seen.get(tid, 0)
    seen[tid] = i + 1
    r = ref[tid][i]
    theirs.append(r["base_status"] == "pass" and r["plus_status"] == "pass")
ours = {}
for l in open(out + "/sr.jsonl_results.jsonl"):
    r = json.loads(l)
    ours[r["sample"]] = r["passed"]
same = sum(ours.get(i) == v for i, v in enumerate(theirs))
differ = [order[i] for i, v in enumerate(theirs) if ours.get(i) != v]
print("verdicts equal: %d/%d%s" % (same, len(theirs), (" (differ: %s)" % ", ".join(differ[:10])) if differ else ""))
print("passed: evalplus %d, selfrepair %d" % (sum(theirs), sum(1 for v in ours.values() if v)))
print("ratio: %.1fx (evalplus %.2f s / selfrepair %.2f s)" % (secs("evalplus") / secs("selfrepair"), secs("evalplus"), secs("selfrepair")))
import os
written = os.path.getmtime(out + "/ep_eval_results.json") - float(open(out + "/evalplus.start").read())
print("ratio to evalplus' results: %.1fx (written %.2f s after its start; the rest of its wall time is its watchdog's sleep)" % (written / secs("selfrepair"), written))
PY

# What bounds the ratio on the canonical solutions: their own compute, as
# both tools' ground truth timed it (per input, natively). Any scorer that
# runs them on CPython needs at least that much CPU.
if [ "${MIXED:-0}" != 1 ]; then
    ep_compute=$("$ep_python" - "$ep_name" <<'PY'
import os, pickle, sys
from evalplus.data.utils import CACHE_DIR
if sys.argv[1] == "humaneval":
    from evalplus.data import get_human_eval_plus_hash as digest
else:
    from evalplus.data import get_mbpp_plus_hash as digest
gt = pickle.load(open(os.path.join(CACHE_DIR, digest() + ".pkl"), "rb"))
print("%.1f" % sum(sum(t["base_time"]) + sum(t["plus_time"]) for t in gt.values()))
PY
)
    ours=$(ls -t "${SELFREPAIR_HOME:-$HOME/.cache/selfrepair}/groundtruth/${dataset%+}_-"*.json.gz | head -1)
    python3 - "$out" "$ours" "$ep_compute" "$jobs" <<'PY'
import gzip, json, os, sys
out, ours, theirs, jobs = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
gt = json.load(gzip.open(ours, "rt"))
mine = sum(c[2] for t in gt["tasks"].values() for c in t["base"] + t["plus"])
written = os.path.getmtime(out + "/ep_eval_results.json") - float(open(out + "/evalplus.start").read())
low, high = sorted((mine, theirs))
print("the canonical solutions' own compute: %.1f s (selfrepair's ground truth), %.1f s (evalplus'):"
      " at least %.1f-%.1f s on %d cores, so at most %.1f-%.1fx evalplus' results" % (
      mine, theirs, low / jobs, high / jobs, jobs, written * jobs / high, written * jobs / low))
PY
fi
