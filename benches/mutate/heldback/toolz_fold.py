from multiprocessing import Pool
from operator import add, mul

from toolz.sandbox.parallel import fold


def test_fold_with_and_without_default():
    assert fold(add, range(100), 0, chunksize=7) == 4950
    assert fold(add, range(100), chunksize=7) == 4950
    assert fold(mul, [1, 2, 3, 4, 5], 1, chunksize=2) == 120
    assert fold(add, [5]) == 5


def test_fold_in_a_pool():
    with Pool(2) as pool:
        assert fold(add, range(1000), 0, map=pool.map, chunksize=50) == 499500
