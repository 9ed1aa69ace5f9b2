"""Ground truth for one evalplus task: run the canonical solution on every
input and print, per input, the arguments and the output as marshal data
(what the harness's `args_m` / `expected_m` load), or a big output as the
harness's digest of it, and the wall time. Values go through a Python literal
first, which checks that they are plain data and evaluate back to themselves.

Runs in the process sandbox; reads one JSON request on stdin, writes one JSON
line on stdout. Mirrors evalplus' `trusted_exec` (deep-copied inputs, MBPP
input deserialisation, output_not_none tasks recorded as `out is not None`).
"""

import binascii
import copy
import json
import marshal
import math
import sys
import time

if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)

MARKERS = {"\x01sr:nan": float("nan"), "\x01sr:inf": float("inf"), "\x01sr:-inf": float("-inf")}
BIG = 10 ** 4000
ENV = {"inf": float("inf"), "nan": float("nan"), "__builtins__": {}}


def unmark(v):
    if isinstance(v, str):
        return MARKERS.get(v, v)
    if isinstance(v, list):
        return [unmark(x) for x in v]
    if isinstance(v, dict):
        return {k: unmark(x) for k, x in v.items()}
    return v


def tup(v):
    return tuple(v)


def mbpp_deserialize(n, inputs):
    """evalplus.data.mbpp.mbpp_deserialize_inputs (v0.2.0)."""
    if n in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740, 744, 809):
        return [[tuple(x) for x in inp] for inp in inputs]
    if n in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[[tuple(x) for x in xs] for xs in inp] for inp in inputs]
    if n in (75, 413, 444, 753):
        return [[[tuple(x) for x in inp[0]]] + [inp[1]] for inp in inputs]
    if n in (106, 750):
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if n == 115:
        return [[[set(x) if isinstance(x, list) and len(x) else {} for x in inp[0]]] for inp in inputs]
    if n == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if n in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if n in (259, 401, 445):
        m = [[[tuple(x) for x in xs] for xs in inp] for inp in inputs]
        return [[tuple(x) for x in inp] for inp in m]
    if n == 278:
        m = [[[tuple(x) if isinstance(x, list) else x for x in inp[0]]] for inp in inputs]
        return [[tuple(x) for x in inp] for inp in m]
    if n == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if n == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}] + inp[1:] for inp in inputs]
    if n == 252:
        return [[complex(inp[0])] for inp in inputs]
    if n in (580, 615, 791):
        def deep(v):
            return tuple(deep(x) for x in v) if isinstance(v, list) else v
        return [deep(inp) for inp in inputs]
    return inputs


class NoLiteral(Exception):
    pass


class TooBig(Exception):
    pass


# An expected output whose literal is longer than this is not kept: it would
# be shipped into the sandbox with every sample (one MBPP+ output is 1 GB).
CAP = 8 << 20
# Past this, an output made of None, bool, int, str, bytes, lists and tuples
# is kept as the harness's digest of it (and a short head for reports): the
# program's run digests its own answer the same way, so neither crosses.
DIGEST_OVER = 64 << 10


def lit(v, cap=CAP):
    """A Python literal for v that evaluates back to v with no builtins."""
    parts = []
    size = [0]

    def put(s):
        size[0] += len(s)
        if size[0] > cap:
            raise TooBig()
        parts.append(s)

    def walk(v):
        t = type(v)
        if v is None or t is bool or t is str or t is bytes or t is float:
            put(repr(v))  # inf, -inf and nan evaluate through ENV
        elif t is int:
            # Decimal literals past 4300 digits hit CPython's int/str limit; hex does not.
            put(("-" if v < 0 else "") + hex(abs(v)) if abs(v) > BIG else repr(v))
        elif t is complex:
            put("(")
            walk(v.real)
            put("+")
            walk(v.imag)
            put("*1j)")
        elif t is list or t is tuple:
            put("[" if t is list else "(")
            for x in v:
                walk(x)
                put(", ")
            put("]" if t is list else ")")
        elif isinstance(v, dict):  # Counter, OrderedDict... compare == to a dict
            put("{")
            for k, x in v.items():
                walk(k)
                put(": ")
                walk(x)
                put(", ")
            put("}")
        elif t is set:
            if not v:
                put("{*()}")
            else:
                put("{")
                for x in v:
                    walk(x)
                    put(", ")
                put("}")
        else:
            raise NoLiteral("%s has no literal form" % t.__name__)

    walk(v)
    return "".join(parts)


def same(a, b):
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b or (a != a and b != b)
    if type(a) is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def literal(v, cap=CAP):
    text = lit(v, cap)
    back = eval(text, dict(ENV))
    if not same(back, v) and not (isinstance(v, dict) and back == v):
        raise NoLiteral("%r does not survive a round trip" % (v,))
    return text, back


def data(value):
    """`value` as base64 of marshal data, which the harness loads several
    times faster than it evaluates a literal. `value` comes from evaluating a literal, so
    it shares no mutable parts, as evalplus' inputs (fresh from JSON) do not."""
    return binascii.b2a_base64(marshal.dumps(value, 4), newline=False).decode()


def main():
    req = json.loads(sys.stdin.read())
    # The harness's own digest, so that expected and answer digests agree.
    harness = {"__name__": "selfrepair_harness"}
    exec(req["harness"], harness)
    g = {}
    exec(req["code"], g)
    fn = g[req["entry_point"]]
    out = {}
    record = json.loads(req["record"])
    for part in ("base", "plus"):
        inputs = unmark(record[part + "_input"]) or []
        if req.get("mbpp_task") is not None:
            inputs = mbpp_deserialize(req["mbpp_task"], inputs)
        rows = []
        skipped = out.setdefault("skipped", [])
        for i, inp in enumerate(inputs):
            args = data(literal(list(inp), 1 << 30)[1])
            arg = copy.deepcopy(inp)
            t0 = time.perf_counter()
            res = fn(*arg)
            t = time.perf_counter() - t0
            if req.get("not_none"):
                res = res is not None
            try:
                exp = data(literal(res, DIGEST_OVER)[1])
            except TooBig:
                try:
                    if not harness["digestible"](res):
                        exp = data(literal(res)[1])
                    else:
                        exp = {"digest": harness["value_digest"](res), "head": harness["value_head"](res)}
                except TooBig:
                    skipped.append("%s input %d: expected output over %d bytes, with no digest" % (part, i, CAP))
                    continue
            except NoLiteral as e:
                raise NoLiteral("%s input %d: %s" % (part, i, e))
            rows.append([args, exp, t])
        out[part] = rows
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
