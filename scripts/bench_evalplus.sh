#!/usr/bin/env bash
# Time `selfrepair eval --dataset humaneval+` against evalplus'
# `evalplus.evaluate` on the same samples (the 164 HumanEval+ canonical
# solutions in solution format, REPEAT times each), side by side in one run:
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
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

python3 - "$data/humanevalplus/HumanEvalPlus.jsonl.gz" "$out" "$repeat" <<'PY'
import gzip, json, sys
src, out, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(out + "/HumanEvalPlus.jsonl", "w") as plus, open(out + "/samples.jsonl", "w") as s:
    for line in gzip.open(src, "rt"):
        p = json.loads(line)
        plus.write(json.dumps(p) + "\n")
        for _ in range(repeat):
            s.write(json.dumps({"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]}) + "\n")
PY
echo "samples: $(wc -l < "$out/samples.jsonl") in $out/samples.jsonl"

. "$here/scripts/measure.sh"

export HUMANEVAL_OVERRIDE_PATH="$out/HumanEvalPlus.jsonl"
ep=("$evalplus" --dataset humaneval --parallel "$jobs" --i-just-wanna-run --samples)
sr=(env SELFREPAIR_DATA_DIR="$data" "$bin" eval --dataset humaneval+ -j "$jobs" --quiet)
cp "$out/samples.jsonl" "$out/warm-ep.jsonl"
cp "$out/samples.jsonl" "$out/warm-sr.jsonl"
"${ep[@]}" "$out/warm-ep.jsonl" > /dev/null 2>&1
"${sr[@]}" "$out/warm-sr.jsonl" > /dev/null 2>&1
cp "$out/samples.jsonl" "$out/ep.jsonl"
cp "$out/samples.jsonl" "$out/sr.jsonl"
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
PY
