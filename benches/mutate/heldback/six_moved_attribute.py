import functools
import itertools

import six
from six.moves import filter, reduce, zip_longest


def test_moved_attributes_resolve():
    assert reduce is functools.reduce
    assert zip_longest is itertools.zip_longest
    assert list(filter(None, [0, 1, 2])) == [1, 2]
    assert six.moves.getcwd.__name__ == "getcwd"


def test_a_new_moved_attribute():
    attr = six.MovedAttribute("my_chain", "itertools", "itertools", "chain")
    assert attr.attr == "chain"
    attr = six.MovedAttribute("chain", "itertools", "itertools")
    assert attr.attr == "chain"
    assert attr._resolve() is itertools.chain
