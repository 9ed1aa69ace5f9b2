from hanoi import hanoi


def test_one_and_two_discs():
    assert hanoi(1) == [(1, 3)]
    assert hanoi(2) == [(1, 2), (1, 3), (2, 3)]


def test_three_discs():
    assert hanoi(3) == [(1, 3), (1, 2), (3, 2), (1, 3), (2, 1), (2, 3), (1, 3)]


def test_no_discs():
    assert hanoi(0) == []
