from flatten import flatten


def test_nested():
    assert list(flatten([1, [2, [3, 4]], 5])) == [1, 2, 3, 4, 5]


def test_flat_and_empty():
    assert list(flatten([1, 2])) == [1, 2]
    assert list(flatten([])) == []
