from ledger import balances_before, final_balance


def test_each_amount_moves_the_balance():
    assert balances_before(10, [5, -3, 7]) == [10, 15, 12]


def test_final_balance_of_deposits():
    assert final_balance(0, [1, 2, 3]) == 6


def test_no_amounts_keep_the_opening_balance():
    assert final_balance(42, []) == 42


def test_no_amounts_give_no_balances():
    assert balances_before(3, []) == []
