"""What a resumed run may change, for both training loops: the one list and the one check.

A run resumes with the settings its checkpoint was trained with (the commands take them as
the layer below ``--config`` and the flags, :func:`recorded_config`). A setting that shapes what
is learnt (the schedule, the loss, the data, the model, even the number of steps, which sets
the learning-rate decay) cannot change silently: the resume is refused with one line naming
each changed setting, unless ``reconfigure`` is given; then the change is taken and recorded,
with the settings before it, in ``RUN/config_history.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpst.errors import InputError
from dpst.train.run_checkpoints import RunCheckpoints
from dpst.train.run_log import append_jsonl

HISTORY_FILE = "config_history.jsonl"
# How and how often a run works and reports, not what it learns: free to change on resume
# (a resume on another machine, with more threads, logging less often). The data stream is
# a function of the seed and the step, so worker processes and threads leave it alone.
FREE_ON_RESUME = frozenset(
    {
        "threads",
        "num_workers",
        "device",
        "log_every",
        "image_every",
        "val_every",
        "checkpoint_every",
        "check_files",
        "backbone.download",
    }
)
SHOWN_CHANGES = 6  # in the refusal's one line; the rest are counted


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, as JSON sees it (tuples as lists)."""
    if isinstance(values, dict):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.loads(json.dumps(values, default=str))}


def changed_settings(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, list]:
    """``{"lr": [old, new], "model.head_width": [old, new]}``: the settings that differ,
    leaving out :data:`FREE_ON_RESUME` and settings the checkpoint predates (it cannot have
    chosen them)."""
    old, new = _flat(recorded), _flat(current)
    return {
        key: [old[key], new[key]]
        for key in old
        if key in new and old[key] != new[key] and not _free(key)
    }


def _free(key: str) -> bool:
    """``key`` or a group it belongs to is in :data:`FREE_ON_RESUME`."""
    parts = key.split(".")
    return any(".".join(parts[:n]) in FREE_ON_RESUME for n in range(1, len(parts) + 1))


def describe(changes: dict[str, list]) -> str:
    """``lr 0.0002 -> 0.001, steps 2000 -> 3000``."""
    shown = [f"{k} {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in changes.items()]
    more = len(shown) - SHOWN_CHANGES
    return ", ".join(shown[:SHOWN_CHANGES]) + (f" and {more} more" if more > 0 else "")


def check_resume(
    run_dir: Path, checkpoint: Path, recorded: dict[str, Any] | None, current: dict[str, Any],
    reconfigure: bool,
) -> dict[str, list]:  # fmt: skip
    """The settings this start changes (taken only with ``reconfigure``).

    Raises:
        InputError: a setting changed without ``reconfigure`` (one line naming each, with
            its value in the checkpoint and now).
    """
    changes = changed_settings(recorded or {}, current)
    if changes and not reconfigure:
        raise InputError(
            f"{checkpoint} was trained with other settings: {describe(changes)}; resume "
            f"without changing them, pass --reconfigure to resume with the new ones "
            f"(recorded in {run_dir / HISTORY_FILE}), or use another --run-dir"
        )
    return changes


def record_start(
    run_dir: Path, step: int, config: dict[str, Any], changes: dict[str, list]
) -> None:
    """One line in ``RUN/config_history.jsonl`` per start: the settings it ran with and
    what it changed (old and new), so no earlier setting is ever lost; a change is also
    printed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "step": step,
        "reconfigured": {k: {"old": a, "new": b} for k, (a, b) in changes.items()},
        "config": config,
    }
    append_jsonl(run_dir / HISTORY_FILE, record)
    if changes:
        print(
            f"reconfigured at step {step}: {describe(changes)} (recorded in "
            f"{run_dir / HISTORY_FILE})",
            flush=True,
        )


def recorded_config(
    checkpoints: RunCheckpoints, config_of: Callable[[Any], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The settings a run folder's checkpoint was trained with: the layer a resume starts
    from, so that only a setting named again with another value is a change. None in a new
    run folder, or when no checkpoint can be used (the loop then says why)."""
    try:
        resumed = checkpoints.load(warn=False)
    except InputError:
        return None
    return config_of(resumed.state) if resumed is not None else None
