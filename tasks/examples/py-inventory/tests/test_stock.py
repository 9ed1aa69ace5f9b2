import pytest

from inventory import Inventory, OutOfStock


def test_receive_adds_up():
    inv = Inventory()
    inv.receive("apple", 3)
    inv.receive("apple", 4)
    assert inv.count("apple") == 7


def test_receive_rejects_non_positive():
    with pytest.raises(ValueError):
        Inventory().receive("apple", 0)


def test_ship_takes_stock():
    inv = Inventory()
    inv.receive("pear", 10)
    inv.ship("pear", 4)
    assert inv.count("pear") == 6


def test_ship_more_than_stock_fails():
    inv = Inventory()
    inv.receive("pear", 2)
    with pytest.raises(OutOfStock):
        inv.ship("pear", 3)
    assert inv.count("pear") == 2


def test_reorder_below_level():
    inv = Inventory(reorder_level=5)
    inv.receive("fig", 2)
    assert inv.needs_reorder("fig")


def test_reorder_at_level():
    inv = Inventory(reorder_level=5)
    inv.receive("fig", 5)
    assert inv.needs_reorder("fig")


def test_to_reorder_lists_low_stock():
    inv = Inventory(reorder_level=3)
    inv.receive("a", 1)
    inv.receive("b", 3)
    inv.receive("c", 9)
    assert inv.to_reorder() == ["a", "b"]
