"""The one exception type the CLI turns into a one-line error."""


class FmnistEdgeError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""
