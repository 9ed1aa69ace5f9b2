from binary_search import binary_search


def test_single_element_and_ends():
    assert binary_search([4], 4) == 0
    assert binary_search([4], 5) == -1
    xs = list(range(0, 200, 2))
    assert binary_search(xs, 0) == 0
    assert binary_search(xs, 198) == 99
    for x in range(-1, 200):
        assert binary_search(xs, x) == (x // 2 if x % 2 == 0 and x >= 0 else -1)
