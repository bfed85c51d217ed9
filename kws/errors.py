"""The error for bad input: the command-line tools print its message as one line and exit."""


class InputError(ValueError):
    """A flag, file or folder the user gave cannot be used; the message says which and why."""


def describe_os_error(error: OSError) -> str:
    """One line for a failed read or write: the file and the system's reason."""
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"
