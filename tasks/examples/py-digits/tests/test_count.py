from digits import digit_count
from digits.count import is_single_digit


def test_single_digit_helper():
    assert is_single_digit(7)
    assert not is_single_digit(42)
    assert is_single_digit(-3)


def test_counts_digits():
    assert digit_count(7) == 1
    assert digit_count(42) == 2
    assert digit_count(-12345) == 5
    assert digit_count(0) == 1
