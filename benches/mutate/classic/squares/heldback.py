from squares import square, sum_of_squares


def test_many_values():
    xs = list(range(-20, 21))
    assert sum_of_squares(xs, processes=3) == sum(x * x for x in xs)
    assert [square(x) for x in (0, 1, 2, 5)] == [0, 1, 4, 25]
