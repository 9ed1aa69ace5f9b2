from pathspec.util import normalize_file


def test_normalize_prefixes():
    assert normalize_file("./a/b.txt") == "a/b.txt"
    assert normalize_file("/a/b.txt") == "a/b.txt"
    assert normalize_file("a/b.txt") == "a/b.txt"
    assert normalize_file("./x") == "x"
