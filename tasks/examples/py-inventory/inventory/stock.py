"""A stock ledger: receive and ship items, and decide what to reorder."""


class OutOfStock(Exception):
    """Raised when a shipment asks for more than is in stock."""


class Inventory:
    def __init__(self, reorder_level=5):
        self.reorder_level = reorder_level
        self._counts = {}

    def receive(self, sku, qty):
        if qty <= 0:
            raise ValueError(f"quantity must be positive, got {qty}")
        self._counts[sku] = self._counts.get(sku, 0) + qty

    def ship(self, sku, qty):
        have = self._counts.get(sku, 0)
        if qty > have:
            raise OutOfStock(f"{sku}: {have} in stock, {qty} requested")
        self._counts[sku] = have - qty

    def count(self, sku):
        return self._counts.get(sku, 0)

    def needs_reorder(self, sku):
        """True when the stock is at or below the reorder level."""
        return self.count(sku) < self.reorder_level

    def to_reorder(self):
        """SKUs to reorder, sorted."""
        return sorted(sku for sku in self._counts if self.needs_reorder(sku))
