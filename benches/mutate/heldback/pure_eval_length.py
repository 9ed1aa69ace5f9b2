from pure_eval.utils import is_standard_types


def test_size_limit_counts_nested_items():
    big = [[0] * 60000, [0] * 60000, [0] * 10]
    assert not is_standard_types(big, check_dict_values=True, deep=True)
    small = [[0] * 10, [0] * 10]
    assert is_standard_types(small, check_dict_values=True, deep=True)
    assert is_standard_types(big, check_dict_values=True, deep=False)
