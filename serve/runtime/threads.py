"""How many threads a run may ask for: 1 to twice the machine's cores.

More only contend for the same cores, and there is no upper bound of the operating system's
that fails gracefully: ``--threads 100000`` once created 32,000 threads and 16.8 GB before
process creation failed machine-wide, and 4096 hung; 0 and -1 meant nothing. One bound for
the CLI's ``--threads`` and :class:`~dpst.serve.runtime.stylizer.FastStylizer`.
"""

from __future__ import annotations

import os

from dpst.errors import InputError

THREADS_PER_CORE = 2


def thread_limit() -> int:
    """The most threads a run may ask for on this machine."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def check_threads(value: int | None, name: str = "--threads") -> int | None:
    """``value`` when it is None (the default: the cores) or in 1..:func:`thread_limit`,
    else a one-line InputError."""
    if value is None:
        return None
    limit = thread_limit()
    if not 1 <= value <= limit:
        raise InputError(
            f"{name} must be 1 to {limit} (twice this machine's {os.cpu_count() or 1} cores), "
            f"got {value}"
        )
    return int(value)
