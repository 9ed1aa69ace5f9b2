#!/usr/bin/env bash
# Peak memory of `selfrepair fix` on one large module: a generated
# LINES-line Python file (default 10,000) with one injected bug, repaired by
# the mutation repairer with --max-attempts 1, so the figure is the baseline,
# the covered run and the ranking of every mutant in the module, not the
# validation of many. Prints the peak RSS and the wall time.
#
#   SELFREPAIR_BIN=target/release/selfrepair LINES=10000 scripts/bench_fix_memory.sh
set -euo pipefail
BIN=${SELFREPAIR_BIN:-target/release/selfrepair}
LINES=${LINES:-10000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 benches/fix/big_module.py "$dir/big" "$LINES"
git -C "$dir/big" init -q
git -C "$dir/big" add -A
git -C "$dir/big" -c user.email=bench@example.com -c user.name=bench commit -qm big
echo "module: $(wc -l < "$dir/big/big/mod.py") lines"
/usr/bin/time -f "peak RSS %M KiB, wall %e s" "$BIN" fix "$dir/big" --model mutate --max-attempts 1 \
    > "$dir/out.txt" 2> "$dir/err.txt" || true
grep -E "^(fixed|not fixed)" "$dir/out.txt" || tail -3 "$dir/out.txt"
grep -E "locate|peak RSS" "$dir/err.txt"
