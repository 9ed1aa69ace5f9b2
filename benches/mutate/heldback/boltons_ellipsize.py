from boltons.strutils import ellipsize


def test_cut_exactly_at_a_space():
    # the space right after the limit is a word boundary too
    assert ellipsize("one two three", 8) == "one two…"
    assert ellipsize("aaa bbb ccc", 8) == "aaa bbb…"
    assert ellipsize("aaa bbb ccc", 7) == "aaa…"


def test_lengths_respected():
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit"
    for n in range(2, len(text) + 3):
        assert len(ellipsize(text, n)) <= n
