import six


class Meta(type):
    created = []

    def __new__(mcls, name, bases, ns):
        cls = super().__new__(mcls, name, bases, ns)
        Meta.created.append(name)
        return cls


class Base(object):
    pass


def test_add_metaclass_keeps_name_bases_and_body():
    @six.add_metaclass(Meta)
    class Thing(Base):
        __slots__ = ("a",)
        answer = 42

        def hello(self):
            return "hi"

    assert type(Thing) is Meta
    assert Thing.__name__ == "Thing"
    assert Thing.__bases__ == (Base,)
    assert Thing.answer == 42
    assert Thing().hello() == "hi"
    assert "Thing" in Meta.created
