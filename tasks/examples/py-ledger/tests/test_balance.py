from ledger import final_balance, running_balances


def test_running_balances_add_each_amount():
    assert running_balances(10, [5, -3, 7]) == [15, 12, 19]


def test_final_balance_of_deposits():
    assert final_balance(0, [1, 2, 3]) == 6


def test_no_amounts_keep_the_opening_balance():
    assert final_balance(42, []) == 42


def test_no_amounts_give_no_balances():
    assert running_balances(3, []) == []
