from flatten import flatten


def test_deep_and_empty_sublists():
    assert list(flatten([[[[["x"]]]], [], [[]], "y"])) == ["x", "y"]
    assert list(flatten([[1, [2]], [[3], 4], [[[5]]]])) == [1, 2, 3, 4, 5]


def test_tuples_are_items():
    assert list(flatten([(1, 2), [3]])) == [(1, 2), 3]
