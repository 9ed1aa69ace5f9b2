"""Sums of squares computed across worker processes."""

from multiprocessing import Pool


def square(x):
    return x * x


def sum_of_squares(xs, processes=2):
    """The sum of the squares of xs, squared in a pool of processes."""
    with Pool(processes) as pool:
        return sum(pool.map(square, xs))
