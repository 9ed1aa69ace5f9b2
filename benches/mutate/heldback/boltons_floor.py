import pytest

from boltons.mathutils import floor


def test_floor_with_options():
    options = [1.5, 2.5, 4, 6, 10]
    assert floor(3.5, options) == 2.5
    assert floor(4, options) == 4
    assert floor(100, options) == 10
    assert floor(1.5, options) == 1.5
    with pytest.raises(ValueError):
        floor(1, options)
    assert floor(2.7) == 2
