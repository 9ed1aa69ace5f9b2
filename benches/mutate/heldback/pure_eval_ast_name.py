import ast

from pure_eval.utils import ast_name, has_ast_name


def test_ast_name():
    assert ast_name(ast.parse("foo", mode="eval").body) == "foo"
    assert ast_name(ast.parse("a.b.bar", mode="eval").body) == "bar"
    assert ast_name(ast.parse("1 + 2", mode="eval").body) is None


def test_has_ast_name():
    import os
    assert has_ast_name(os.path.join, ast.parse("os.path.join", mode="eval").body)
    assert not has_ast_name(os.path.join, ast.parse("os.path.split", mode="eval").body)
