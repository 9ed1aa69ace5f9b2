import inflection


def test_singular_forms():
    pairs = {"boxes": "box", "quizzes": "quiz", "matrices": "matrix",
             "people": "person", "octopi": "octopus", "cows": "cow",
             "statuses": "status", "BusinessCategories": "BusinessCategory"}
    for plural, singular in pairs.items():
        assert inflection.singularize(plural) == singular


def test_singular_is_unchanged():
    assert inflection.singularize("sheep") == "sheep"
    assert inflection.singularize("box") == "box"
