from greet import greeting


def test_greets_by_name():
    assert greeting("Grace") == "Hello, Grace!"


def test_capitalises_the_name():
    assert greeting("ada") == "Hello, Ada!"
