"""Stopping a training run cleanly: SIGTERM, SIGHUP or Ctrl-C end the current step, not the
process.

The training-loop skeleton of both trainers (:func:`dpst.train.skeleton.run_steps`) polls
:attr:`StopSignal.requested` after every step and then writes a checkpoint, so a service
manager's SIGTERM, a closed terminal's SIGHUP or a person's Ctrl-C never loses more than the
step in progress.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

# SIGHUP (a closed terminal) does not exist on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)
)


class StopSignal:
    """SIGTERM, SIGHUP and the first Ctrl-C ask the loop to stop after the current step; a second
    Ctrl-C interrupts at once. Handlers are restored on exit."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopSignal:
        # Signal handlers can only be set from the main thread; elsewhere (a test's thread)
        # the loop runs to its end or its stop_at.
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
