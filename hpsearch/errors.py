"""The one exception type that command lines turn into a message and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a flag value, a file, a dataset. The message says what is wrong
    and what is allowed; command lines print it without a traceback and exit with status 2."""


class TrialEnded(Exception):
    """A trial ended early for a reason hpsearch reports on its own line (diverged, out of
    memory, interrupted): an outcome, not a bug, so Optuna's traceback for it is not shown."""
