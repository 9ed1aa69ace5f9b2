from binary_search import binary_search


def test_finds_each_element():
    xs = [1, 3, 5, 7, 9, 11]
    for i, x in enumerate(xs):
        assert binary_search(xs, x) == i


def test_absent_values():
    assert binary_search([1, 3, 5], 4) == -1
    assert binary_search([1, 3, 5], 0) == -1
    assert binary_search([], 1) == -1
