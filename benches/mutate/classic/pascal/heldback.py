import math

from pascal import pascal


def test_binomials():
    for r, row in enumerate(pascal(12)):
        assert row == [math.comb(r, c) for c in range(r + 1)]


def test_zero_rows():
    assert pascal(0) == []
