"""0/1 knapsack by dynamic programming."""


def knapsack(capacity, items):
    """The best total value of items (weight, value) that fit in capacity."""
    best = [0] * (capacity + 1)
    for weight, value in items:
        for c in range(capacity, 0, -1):
            if weight <= c:
                best[c] = max(best[c], best[c - weight] + value)
    return best[capacity]
