"""The one exception type that reaches the user as a message instead of a traceback."""


class W2vuError(Exception):
    """A problem with the user's input or configuration: the message names the file and the fix."""
