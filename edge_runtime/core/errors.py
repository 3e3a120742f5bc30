"""The one exception type the CLI turns into a one-line error, and how to quote another one."""


class FmnistEdgeError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (libraries attach pages of context), or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
