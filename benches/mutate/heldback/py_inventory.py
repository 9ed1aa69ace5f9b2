from inventory.stock import Inventory


def test_reorder_threshold_boundaries():
    inv = Inventory(reorder_level=3)
    inv.receive("a", 3)
    inv.receive("b", 4)
    inv.receive("c", 2)
    assert inv.needs_reorder("a")
    assert not inv.needs_reorder("b")
    assert inv.needs_reorder("c")
    assert inv.to_reorder() == ["a", "c"]
