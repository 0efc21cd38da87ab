"""SIGTERM and SIGHUP as Ctrl-C, for commands that keep their result when interrupted.

A ``timeout``, a ``kill`` or a closed terminal must not lose hours of optimisation: under
:func:`termination_as_interrupt` those signals raise KeyboardInterrupt, the path Ctrl-C
already takes (the optimiser stops and the result so far is written), and the command then
exits with the shell's status for that signal (128 + its number: 143, 129).
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dpst.commands.exit_codes import EXIT_INTERRUPTED

# SIGHUP does not exist on Windows.
TERMINATION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Received:
    """Which termination signal arrived, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def exit_code(self) -> int:
        """128 + the signal's number, as the shell reports it; Ctrl-C's 130 otherwise."""
        return 128 + self.signum if self.signum is not None else EXIT_INTERRUPTED

    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "SIGINT"


@contextmanager
def termination_as_interrupt() -> Iterator[Received]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt; handlers are restored
    on exit. Outside the main thread (where handlers cannot be set) nothing changes."""
    received = Received()

    def handle(signum, frame) -> None:
        received.signum = signum
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in TERMINATION_SIGNALS:
            previous[sig] = signal.signal(sig, handle)
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interruptible(command: str, run: Callable[[], int], kept: str) -> int:
    """``run()``, with Ctrl-C, SIGTERM and SIGHUP stopping it as an exception does: every
    ``finally`` and ``except BaseException`` on the way runs, so atomic writes delete their
    hidden temporaries (a signal's default action would kill the process with them left
    behind). Then one line on stderr saying what was ``kept``, and 130, 143 or 129.

    For the commands whose partial work is worth nothing (``fast``, ``look``, ``look
    export``): what they finished is whole, and nothing else is left.
    """
    with termination_as_interrupt() as received:
        try:
            return run()
        except KeyboardInterrupt:
            print(f"dpst {command}: interrupted ({received.name()}): {kept}", file=sys.stderr)
            return received.exit_code()


def forget_handled_interrupts() -> None:
    """Keep the exit code the command chose after it handled a Ctrl-C, SIGTERM or SIGHUP.

    CPython remembers a KeyboardInterrupt that escaped any code run through ``PyRun_*`` (as
    libraries run some of theirs) and, at exit, ends the process by SIGINT, even when the
    exception was caught further up: ``dpst targets`` stopped by SIGHUP, summary written and
    129 returned, then died by SIGINT (-2) about one run in five. Running one statement the
    same way resets that memory; every KeyboardInterrupt has been handled when this runs.
    """
    try:
        ctypes.pythonapi.PyRun_SimpleStringFlags(b"pass", None)
    except (AttributeError, OSError):  # not CPython
        pass
