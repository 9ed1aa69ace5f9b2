from dedupe import dedupe


def test_keeps_first_occurrences():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]


def test_key():
    assert dedupe(["a", "B", "A", "b"], key=str.lower) == ["a", "B"]


def test_empty():
    assert dedupe([]) == []
