"""The one exception type that command lines turn into a message and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a flag value, a file, a dataset. The message says what is wrong
    and what is allowed; command lines print it without a traceback and exit with status 2."""
