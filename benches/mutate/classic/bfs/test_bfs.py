from bfs import reachable


def test_chain():
    assert reachable({"a": ["b"], "b": ["c"]}, "a") == ["a", "b", "c"]


def test_diamond_visits_each_node_once():
    graph = {"a": ["b", "c"], "b": ["d"], "c": ["d"]}
    assert reachable(graph, "a") == ["a", "b", "c", "d"]


def test_lonely_start():
    assert reachable({}, "x") == ["x"]
