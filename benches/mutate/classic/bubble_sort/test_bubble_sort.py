from bubble_sort import bubble_sort


def test_sorts_small_lists():
    assert bubble_sort([3, 1, 2]) == [1, 2, 3]
    assert bubble_sort([5, 4, 3, 2, 1]) == [1, 2, 3, 4, 5]


def test_sorts_with_duplicates():
    assert bubble_sort([2, 1, 2, 1]) == [1, 1, 2, 2]


def test_empty_and_single():
    assert bubble_sort([]) == []
    assert bubble_sort([7]) == [7]
