from toolz import get_in


def test_nested_lookups():
    data = {"a": {"b": [10, 20, {"c": "deep"}]}}
    assert get_in(["a", "b", 1], data) == 20
    assert get_in(["a", "b", 2, "c"], data) == "deep"
    assert get_in([], data) == data
    assert get_in(["a", "x"], data, default="no") == "no"
