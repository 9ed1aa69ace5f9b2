from boltons.strutils import bytes2human


def test_unit_boundaries():
    for exp, unit in enumerate("BKMGTPEZ"):
        assert bytes2human(1024 ** exp) == "1" + unit
        assert bytes2human(3 * 1024 ** exp) == "3" + unit
    assert bytes2human(1023) == "1023B"
    assert bytes2human(-2048, 1) == "-2.0K"
