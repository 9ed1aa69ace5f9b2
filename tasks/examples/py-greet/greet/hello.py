def greeting(name):
    """A greeting for `name`, which is capitalised: greeting("ada") is "Hello, Ada!"."""
    return "Hello, " + name + "!"
