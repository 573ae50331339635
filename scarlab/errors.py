"""One exception type for every mistake a user can fix: the CLI prints its message, never a traceback."""


class ScarlabError(Exception):
    """A problem with the user's input or files; the message names the problem and the fix."""


def choose(kind: str, value: str, valid) -> None:
    """Raise a one-line error when `value` is not among `valid`, listing the valid choices."""
    valid = list(valid)
    if value not in valid:
        raise ScarlabError(f"unknown {kind} {value!r}; valid choices: {', '.join(map(str, valid))}")
