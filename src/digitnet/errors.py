"""The one exception type for errors a user can cause."""


class DigitnetError(ValueError):
    """A problem with user input: a bad file, a wrong shape, a bad option.

    The message says what was expected and what was found. The CLI prints it
    on one line and exits with status 2.
    """
