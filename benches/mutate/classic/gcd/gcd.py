"""Greatest common divisor, Euclid's way."""


def gcd(a, b):
    """The greatest common divisor of the non-negative integers a and b."""
    if b == 0:
        return a
    return gcd(b, a % b)


def lcm(a, b):
    """The least common multiple of the positive integers a and b."""
    return a * b // gcd(a, b)
