from knapsack import knapsack


def test_classic_instance():
    items = [(60, 10), (50, 8), (70, 10), (30, 4)]
    assert knapsack(100, items) == 14


def test_exact_fit():
    assert knapsack(10, [(10, 7)]) == 7
    assert knapsack(5, [(2, 3), (3, 4)]) == 7


def test_nothing_fits():
    assert knapsack(3, [(4, 10)]) == 0
