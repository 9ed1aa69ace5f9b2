"""Flatten nested lists."""


def flatten(arr):
    """Yield the non-list items of the nested list arr, depth first, in order."""
    for x in arr:
        if isinstance(x, list):
            yield from flatten(x)
        else:
            yield x
