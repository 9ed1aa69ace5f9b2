import functools
import random

from levenshtein import levenshtein


@functools.lru_cache(maxsize=None)
def reference(a, b):
    if not a:
        return len(b)
    if not b:
        return len(a)
    if a[0] == b[0]:
        return reference(a[1:], b[1:])
    return 1 + min(reference(a[1:], b), reference(a, b[1:]), reference(a[1:], b[1:]))


def test_matches_reference():
    rng = random.Random(11)
    for _ in range(300):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 7)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 7)))
        assert levenshtein(a, b) == reference(a, b)
