from digits.count import digit_count


def test_digit_counts():
    for n, expected in [(0, 1), (7, 1), (10, 2), (99, 2), (100, 3), (-12345, 5), (10 ** 20, 21)]:
        assert digit_count(n) == expected
