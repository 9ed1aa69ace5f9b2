import math

from gcd import gcd, lcm


def test_matches_math_gcd():
    for a in range(0, 60):
        for b in range(0, 60):
            assert gcd(a, b) == math.gcd(a, b)


def test_lcm_matches_math():
    for a in range(1, 30):
        for b in range(1, 30):
            assert lcm(a, b) == math.lcm(a, b)
