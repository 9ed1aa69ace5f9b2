from .balance import running_balances, final_balance

__all__ = ["running_balances", "final_balance"]
