"""Breadth-first search over a graph given as adjacency lists."""

from collections import deque


def reachable(graph, start):
    """The nodes reachable from start, in breadth-first order, each once."""
    seen = {start}
    order = []
    queue = deque([start])
    while queue:
        node = queue.popleft()
        order.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return order
