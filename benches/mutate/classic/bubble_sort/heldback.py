import random

from bubble_sort import bubble_sort


def test_matches_sorted_on_random_lists():
    rng = random.Random(7)
    for n in range(0, 30):
        xs = [rng.randint(-50, 50) for _ in range(n)]
        assert bubble_sort(list(xs)) == sorted(xs)


def test_sorts_in_place():
    xs = [9, 8, 7]
    bubble_sort(xs)
    assert xs == [7, 8, 9]
