from levenshtein import levenshtein


def test_classic_pairs():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("flaw", "lawn") == 2


def test_empty():
    assert levenshtein("", "abc") == 3
    assert levenshtein("abc", "") == 3
    assert levenshtein("", "") == 0


def test_deletions():
    assert levenshtein("abcd", "ad") == 2
