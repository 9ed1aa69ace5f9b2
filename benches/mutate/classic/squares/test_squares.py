from squares import square, sum_of_squares


def test_square():
    assert square(3) == 9
    assert square(-4) == 16


def test_sum_of_squares_in_a_pool():
    assert sum_of_squares([1, 2, 3]) == 14
    assert sum_of_squares([]) == 0
