import inflection


def test_uncountables_and_empty():
    for word in ("equipment", "fish", "information", "rice", "series", "sheep", "species"):
        assert inflection.pluralize(word) == word
        assert inflection.pluralize(word.upper()) == word.upper()
    assert inflection.pluralize("") == ""


def test_regular_words():
    assert inflection.pluralize("box") == "boxes"
    assert inflection.pluralize("quiz") == "quizzes"
