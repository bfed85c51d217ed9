"""The error for bad input: the command-line tools print its message as one line and exit."""


class InputError(ValueError):
    """A flag, file or folder the user gave cannot be used; the message says which and why."""
