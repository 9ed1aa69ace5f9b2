from bfs import reachable


def test_cycles_terminate():
    graph = {1: [2, 3], 2: [1, 3, 4], 3: [1, 2, 4], 4: [1]}
    assert reachable(graph, 1) == [1, 2, 3, 4]


def test_self_loop_and_unreachable():
    graph = {"a": ["a", "b"], "b": [], "z": ["a"]}
    assert reachable(graph, "a") == ["a", "b"]
