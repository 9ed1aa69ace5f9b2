import itertools
import random

from knapsack import knapsack


def brute_force(capacity, items):
    best = 0
    for r in range(len(items) + 1):
        for combo in itertools.combinations(items, r):
            if sum(w for w, _ in combo) <= capacity:
                best = max(best, sum(v for _, v in combo))
    return best


def test_matches_brute_force():
    rng = random.Random(3)
    for _ in range(200):
        items = [(rng.randint(1, 10), rng.randint(1, 20)) for _ in range(rng.randint(0, 6))]
        capacity = rng.randint(0, 25)
        assert knapsack(capacity, items) == brute_force(capacity, items)
