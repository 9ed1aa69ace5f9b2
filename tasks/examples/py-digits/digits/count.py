"""Counting decimal digits."""


def digit_count(n):
    """How many decimal digits n has; 0 has one, and the sign does not count."""
    n = abs(n)
    count = 0
    while n >= 0:
        n //= 10
        count += 1
    return max(count, 1)


def is_single_digit(n):
    """Whether n is written with one digit."""
    return -10 < n < 10
