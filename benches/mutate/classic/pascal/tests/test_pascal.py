import pascal
from pascal import pascal as rows


def test_first_rows():
    assert rows(1) == [[1]]
    assert rows(4) == [[1], [1, 1], [1, 2, 1], [1, 3, 3, 1]]


def test_row_lengths():
    assert [len(r) for r in rows(6)] == [1, 2, 3, 4, 5, 6]


def test_version_is_set():
    assert pascal.__version__
