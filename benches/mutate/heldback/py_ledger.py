from ledger.balance import balances_before, final_balance


def test_running_balances():
    assert balances_before(0, [1, 1, 1, 1]) == [0, 1, 2, 3]
    assert balances_before(-5, [10]) == [-5]
    assert final_balance(100, [-50, -25, 5]) == 30
