import inflection


def test_lower_camel_case():
    assert inflection.camelize("device_type", False) == "deviceType"
    assert inflection.camelize("a_b", False) == "aB"
    assert inflection.camelize("x", False) == "x"
    assert inflection.camelize("http_request_url", uppercase_first_letter=False) == "httpRequestUrl"
