"""Removing duplicates while keeping the first occurrence of each item."""


def dedupe(items, key=None):
    """The items without repeats, in order; key(item) decides what repeats."""
    seen = set()
    out = []
    for item in items:
        k = item if key is None else key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
