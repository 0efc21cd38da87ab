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
