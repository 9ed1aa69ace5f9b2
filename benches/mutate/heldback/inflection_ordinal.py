import inflection


def test_ordinal_suffixes():
    expected = {0: "th", 1: "st", 2: "nd", 3: "rd", 4: "th", 11: "th", 12: "th",
                13: "th", 21: "st", 22: "nd", 101: "st", 111: "th", 112: "th",
                1013: "th", 1023: "rd", -2: "nd", -12: "th"}
    for number, suffix in expected.items():
        assert inflection.ordinal(number) == suffix, number
    assert inflection.ordinalize(42) == "42nd"
