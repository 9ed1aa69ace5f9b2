from .balance import balances_before, final_balance

__all__ = ["balances_before", "final_balance"]
