"""Running balances of an account."""


def running_balances(opening, amounts):
    """Return the balance after each amount is applied, in order.

    >>> running_balances(10, [5, -3])
    [15, 12]
    """
    balances = []
    balance = opening
    for amount in amounts:
        balances.append(balance)
    return balances


def final_balance(opening, amounts):
    """The balance after every amount (the opening balance if there are none)."""
    balances = running_balances(opening, amounts)
    return balances[-1] if balances else opening
