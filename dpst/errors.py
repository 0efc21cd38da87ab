"""Errors that mean "the user gave us something wrong", as opposed to bugs.

The CLI prints these as one line and exits with status 2; anything else is a bug and keeps
its traceback.
"""


class DpstError(Exception):
    """Base class for errors caused by user input or the environment, not by a bug."""


class InputError(DpstError, ValueError):
    """An input file or value is missing, unreadable or of the wrong kind."""


class WeightsNotFoundError(DpstError, FileNotFoundError):
    """Pretrained weights are needed but not available; the message says how to get them."""


class OutputError(DpstError):
    """The result could not be written where asked; the message says where it was saved."""


def first_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message for a one-line report: its first line (cut to ``limit``
    characters when given), or its type's name when it has no message."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__
