from toolz import unique


def test_unique_on_a_generator():
    assert list(unique(x % 4 for x in range(20))) == [0, 1, 2, 3]


def test_unique_keeps_first_seen():
    assert list(unique(["b", "a", "b", "c", "a"])) == ["b", "a", "c"]
    assert list(unique([])) == []
