from dedupe import dedupe


def test_no_repeats_unchanged():
    assert dedupe(range(5)) == [0, 1, 2, 3, 4]


def test_generator_input_and_key():
    assert dedupe((x % 3 for x in range(10))) == [0, 1, 2]
    assert dedupe([(1, "a"), (1, "b"), (2, "c")], key=lambda p: p[0]) == [(1, "a"), (2, "c")]
