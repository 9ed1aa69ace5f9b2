"""Entry point of the fast sandbox component (built with componentize-py).

componentize-py snapshots the interpreter after this module is imported, so
every module imported here is ready at run time and nothing else is: this
import list is the fast sandbox's preload list. It covers what HumanEval,
MBPP(+) and APPS solutions import (tests check it against every canonical
solution); a program importing anything else gets `missing_module`, and the
caller reruns it on the full runtime.
"""

# fmt: off
import abc, array, ast, base64, binascii, bisect, builtins, calendar, cmath, codecs, collections, collections.abc  # noqa: E401,F401
import contextlib, copy, dataclasses, datetime, decimal, difflib, enum, fractions, functools, gc, hashlib, heapq  # noqa: E401,F401
import inspect, io, itertools, json, keyword, linecache, math, numbers, operator, pprint, queue, random, re  # noqa: E401,F401
import reprlib, statistics, string, struct, sys, textwrap, time, timeit, traceback, types, typing, unicodedata  # noqa: E401,F401
import warnings, weakref, zlib, atexit, os, locale, uuid, shlex, fnmatch, glob, posixpath, stat, pickle  # noqa: E401,F401
# fmt: on

import harness
import wit_world

PRELOADED = sorted(m for m in sys.modules)

# Move everything the snapshot holds into the collector's permanent
# generation. CPython 3.14's incremental collector scans part of the old
# generation at every young collection; frozen, the snapshot's objects are
# never walked, so a run pays only for the objects it creates.
gc.collect()
gc.freeze()


class WitWorld(wit_world.WitWorld):
    def run(self, request: str) -> str:
        return harness.run_request(request)
