"""The shipped model's files: weights as safetensors with a JSON config, and the ONNX graphs.

A bundle folder holds::

    generator.safetensors   the weights (no pickle: loading runs no code)
    generator.json          the GeneratorConfig, the label set and where the model came from
    model.onnx              the stylizer      } dpst export's three files, for the
    model.style.onnx        the style encoder } torch-free runtime (dpst.serve.runtime.stylizer)
    model.render.onnx       the renderer      }

The package ships one in ``dpst/serve/bundled/``
(:data:`dpst.serve.runtime.stylizer.BUNDLED_MODEL`); ``dpst export CHECKPOINT --bundle DIR``
writes another. ``dpst train --init-from`` takes a
bundle (``bundled`` for the shipped one) as well as a checkpoint: :func:`load_generator`.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from dpst.errors import InputError, first_line

WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "generator.json"
STYLIZER_FILE = "model.onnx"
BUNDLE_FORMAT = "dpst-generator-bundle"
BUNDLED = "bundled"  # names the shipped bundle wherever a model source is asked for


def save_bundle(model, folder: str | os.PathLike, info: dict[str, Any] | None = None):
    """Write ``model`` (a Generator) as a bundle into ``folder``; returns the ExportResult.

    Args:
        info: provenance stored in ``generator.json`` (training command, seed, metrics...).
    """
    from safetensors.torch import save

    from dpst.imageio import atomic_write, write_json
    from dpst.models.export import export_onnx

    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save(tensors, metadata={"format": BUNDLE_FORMAT})
    atomic_write(folder / WEIGHTS_FILE, lambda fh: fh.write(data))
    write_json(folder / CONFIG_FILE, {"format": BUNDLE_FORMAT, "config": model.config.to_dict(),
                                      "info": info or {}})  # fmt: skip
    return export_onnx(model, folder / STYLIZER_FILE)


def load_bundle(folder: str | os.PathLike):
    """The Generator (eval mode) stored in a bundle folder (or its ``generator.json``).

    Raises:
        InputError: a missing or unreadable file, or weights that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from dpst.models.generator import Generator, GeneratorConfig

    folder = Path(folder)
    if folder.name == CONFIG_FILE:
        folder = folder.parent
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        config = GeneratorConfig.from_dict(dict(meta["config"]))
        state = load_file(str(folder / WEIGHTS_FILE))
    except FileNotFoundError as err:
        missing = Path(err.filename).name
        raise InputError(f"{folder}: not a model bundle ({missing} missing)") from None
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
        raise InputError(f"{folder}: unreadable model bundle ({err})") from None
    model = Generator(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        why = first_line(err, 200)
        raise InputError(f"{folder}: weights do not fit the config ({why})") from None
    return model.eval()


def bundled_folder() -> Path:
    """The bundle shipped in the package (``dpst/serve/bundled``), as package data."""
    return Path(str(files("dpst.serve") / "bundled"))


def load_generator(source: str | os.PathLike):
    """A Generator from ``"bundled"`` (the shipped model), a bundle folder or its
    ``generator.json``, or a generator checkpoint.

    Raises:
        InputError: as :func:`load_bundle` and :func:`~dpst.models.checkpoint.load_checkpoint`.
    """
    from dpst.models.checkpoint import load_checkpoint

    path = bundled_folder() if str(source) == BUNDLED else Path(source)
    if is_bundle(path):
        return load_bundle(path)
    return load_checkpoint(path)[0]


def is_bundle(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / CONFIG_FILE).is_file() or (path.name == CONFIG_FILE and path.is_file())
