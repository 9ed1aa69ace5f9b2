"""A large Python project for scripts/bench_fix_memory.sh: at least LINES
lines of whole functions in one module (branches, loops, calls, arithmetic: every mutation
operator has places), a test per function, and one injected bug."""

import os
import sys

out, lines = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(out, "big"), exist_ok=True)
os.makedirs(os.path.join(out, "tests"), exist_ok=True)
body = []
tests = ["from big.mod import *\n"]
n = 0
while len(body) < lines:
    bug = n == 7
    cmp = "<" if bug else "<="
    body += [
        f"def f{n}(xs, lo, hi):",
        f'    """Sum of the items of xs in [lo, hi], scaled (function {n})."""',
        "    total = 0",
        "    seen = set()",
        "    for i in range(0, len(xs)):",
        "        x = xs[i]",
        f"        if lo <= x and x {cmp} hi:",
        "            if x not in seen:",
        "                seen.add(x)",
        "            total += x * 2 - x",
        "        else:",
        "            total = total + 0",
        "    return max(total, min(lo, hi) - lo)",
        "",
        "",
    ]
    tests += [
        f"def test_f{n}():",
        f"    assert f{n}([1, 2, 3, 4], 2, 3) == 5",
        "",
    ]
    n += 1
with open(os.path.join(out, "big", "__init__.py"), "w") as f:
    f.write("")
with open(os.path.join(out, "big", "mod.py"), "w") as f:
    f.write("\n".join(body) + "\n")
with open(os.path.join(out, "tests", "test_mod.py"), "w") as f:
    f.write("\n".join(tests) + "\n")
with open(os.path.join(out, "pyproject.toml"), "w") as f:
    f.write("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
