from .stock import Inventory, OutOfStock

__all__ = ["Inventory", "OutOfStock"]
