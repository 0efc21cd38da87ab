"""Layered configuration: dataclass defaults, then a JSON file, then command-line flags.

A run's report stores its resolved config under ``"config"``; passing that report (or any
JSON object with the same keys) as ``--config`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from dpst.errors import InputError


def update_dataclass(obj: Any, values: dict[str, Any], where: str = "config") -> Any:
    """A copy of dataclass ``obj`` with fields from ``values`` (nested ones recursively).

    Works for frozen dataclasses too (their ``__post_init__`` checks run again). Unknown keys
    and values of the wrong type raise :class:`InputError` naming the key.
    """
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise InputError(f"{where}: unknown setting {key!r} (known: {', '.join(fields)})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise InputError(f"{where}.{key}: expected an object, got {value!r}")
            changes[key] = update_dataclass(current, value, f"{where}.{key}")
            continue
        if isinstance(current, bool) and not isinstance(value, bool):
            raise InputError(f"{where}.{key}: expected true or false, got {value!r}")
        if isinstance(current, int | float) and not isinstance(current, bool):
            value = _number(value, integer=isinstance(current, int), where=f"{where}.{key}")
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    try:
        return dataclasses.replace(obj, **changes)
    except ValueError as err:
        raise InputError(f"{where}: {err}") from None


def _number(value: Any, integer: bool, where: str) -> int | float:
    """A JSON number for a numeric setting: finite (JSON files may say NaN or Infinity, which
    no setting means), and whole for a count (2.5 iterations ran as a crash, not a run)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    if not integer:
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise InputError(f"{where}: expected a whole number, got {value!r}")
    return int(value)


def validated(config: Any, where: str = "") -> Any:
    """``config`` after its ``validate()``; a ValueError becomes a one-line InputError
    (prefixed ``where: `` when given)."""
    try:
        config.validate()
    except ValueError as err:
        raise InputError(f"{where}: {err}" if where else str(err)) from None
    return config


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config; a run report is accepted too (its ``"config"`` entry is used)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable JSON config ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config must be a JSON object")
    return data.get("config", data) if "config" in data else data
