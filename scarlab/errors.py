"""One exception type for every mistake a user can fix: the CLI prints its message, never a traceback."""
import errno


class ScarlabError(Exception):
    """A problem with the user's input or files; the message names the problem and the fix."""


def choose(kind: str, value: str, valid) -> None:
    """Raise a one-line error when `value` is not among `valid`, listing the valid choices."""
    valid = list(valid)
    if value not in valid:
        raise ScarlabError(f"unknown {kind} {value!r}; valid choices: {', '.join(map(str, valid))}")


_NO_SPACE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}
_DENIED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}


def disk_error(exc: BaseException, where=None) -> ScarlabError | None:
    """A full or read-only disk, or a permission error, as one line naming the path (``exc.filename``, else
    ``where``) and the fix; None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in {errno.EROFS, *_NO_SPACE, *_DENIED}:
        return None
    path = exc.filename or where or "a file"
    if exc.errno in _NO_SPACE:
        return ScarlabError(f"cannot write {path}: {_NO_SPACE[exc.errno]}; free some space there or choose a folder "
                            "on another disk (--out)")
    if exc.errno == errno.EROFS:
        return ScarlabError(f"cannot write {path}: read-only file system; choose a folder you can write to (--out, "
                            "--summary)")
    # reading or writing, we cannot tell which
    return ScarlabError(f"{path}: {_DENIED[exc.errno]}; fix its permissions or choose another folder (--out, "
                        "--summary)")
