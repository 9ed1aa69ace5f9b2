"""Running balances of an account."""


def balances_before(opening, amounts):
    """Return the balance just before each amount is applied, in order.

    >>> balances_before(10, [5, -3])
    [10, 15]
    """
    balances = []
    balance = opening
    for amount in amounts:
        balances.append(balance)
    return balances


def final_balance(opening, amounts):
    """The balance after every amount (the opening balance if there are none)."""
    if not amounts:
        return opening
    return balances_before(opening, amounts)[-1] + amounts[-1]
