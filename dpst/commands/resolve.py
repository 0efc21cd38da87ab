"""Flags to configs, the one way: dataclass defaults, then ``--config FILE``, then the flags.

Each command names its flags with a table ``{flag dest: "field.path"}`` (a tuple of paths
when one flag sets several fields); a flag left at its default (``None``) leaves the field
to the layers below it. The resolved config is what the command writes next to its output,
and passing that report back as ``--config`` runs the same thing again.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, TypeVar

from dpst.config import load_config_file, update_dataclass
from dpst.serve.runtime.pipeline import OnePassConfig

T = TypeVar("T")
FlagTable = Mapping[str, str | tuple[str, ...]]


def _put(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        values = values.setdefault(key, {})
    values[last] = value


def flag_values(args: argparse.Namespace, flags: FlagTable) -> dict[str, Any]:
    """The flags that were given, as nested config values (``"weights.style"`` -> nested)."""
    values: dict[str, Any] = {}
    for dest, paths in flags.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        for path in (paths,) if isinstance(paths, str) else paths:
            _put(values, path, value)
    return values


def backbone_values(args: argparse.Namespace) -> dict[str, Any]:
    """``--backbone`` and ``--vgg-weights`` as BackboneConfig values.

    ``--backbone random`` also drops a weights file named by a layer below (a ``--config``
    report, the checkpoint's training run): the random stand-in takes none. Naming both on
    the command line stays an error (the backbone loader says so).
    """
    values: dict[str, Any] = {}
    name = getattr(args, "backbone", None)
    if name is not None:
        values["name"] = name
        if name == "random":
            values["weights"] = None
    if getattr(args, "vgg_weights", None) is not None:
        values["weights"] = args.vgg_weights
    return values


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def file_values(
    args: argparse.Namespace, section: str | None = None, sections: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The ``--config`` file's values ({} without one): its ``section`` entry, or the whole
    file less the ``sections`` that other configs take."""
    path = getattr(args, "config", None)
    if not path:
        return {}
    data = dict(load_config_file(path))
    if section is not None:
        return data.get(section) or {}
    return {k: v for k, v in data.items() if k not in sections}


def resolve(
    defaults: T,
    args: argparse.Namespace,
    flags: FlagTable | None = None,
    *,
    given: Mapping[str, Any] | None = None,
    below_file: tuple[Mapping[str, Any], ...] = (),
    section: str | None = None,
    sections: tuple[str, ...] = (),
) -> T:
    """The config a command runs with.

    Layers, each over the last: ``defaults`` (a dataclass); ``below_file`` (e.g. what a
    checkpoint was trained with); the ``--config`` file (see :func:`file_values`); the flags
    of ``flags`` that were given, with ``given`` (values the command derived from flags)
    over them. Unknown keys and wrong types are InputErrors naming the key.
    """
    where = section or "config"
    flag_layer = _merge(flag_values(args, flags or {}), given or {})
    config = defaults
    for layer in (*below_file, file_values(args, section, sections), flag_layer):
        if layer:
            config = update_dataclass(config, dict(layer), where)
    return config


ONE_PASS_FLAGS: FlagTable = {"strength": "strength", "threads": "threads"}


def one_pass_config(args: argparse.Namespace) -> OnePassConfig:
    """``--strength`` and ``--threads`` of ``dpst fast``, ``look`` and ``video`` as the one
    pass's config, checked (one line each, naming the flag). The flags are its only layer
    (these commands take no ``--config``)."""
    return OnePassConfig(**flag_values(args, ONE_PASS_FLAGS)).checked()
