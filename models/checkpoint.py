"""Generator checkpoints: the config that rebuilds the network, its weights, and caller extras.

A checkpoint is a ``torch.save`` dict of plain types only, so that it loads with
``torch.load(weights_only=True)`` (no pickled code runs on load)::

    {"format": "dpst-generator", "format_version": 1, "dpst_version": "...",
     "config": GeneratorConfig.to_dict(), "state_dict": {...}, "extra": {...} | None}
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from dpst import __version__
from dpst.errors import InputError, first_line
from dpst.imageio import atomic_write
from dpst.models.generator import Generator, GeneratorConfig

FORMAT = "dpst-generator"
FORMAT_VERSION = 1
# What to do about a checkpoint that cannot be used, where the caller knows no better.
ADVICE = "use another checkpoint, or write this one again"


def save_checkpoint(
    path: str | os.PathLike, model: Generator, extra: dict[str, Any] | None = None
) -> None:
    """Write ``model`` (config and weights) and ``extra`` to ``path`` atomically.

    The file is written next to its destination and renamed over it
    (:func:`dpst.imageio.atomic_write`), so a crash or a kill leaves either the old
    checkpoint or the new one, never a partial file; it gets the usual permissions.

    Args:
        extra: plain Python values and tensors only (numbers, strings, lists, dicts), e.g.
            the training step or the label set; anything else fails to load later.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dpst_version": __version__,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


class CheckpointError(InputError):
    """A checkpoint that cannot be used: ``problem`` says why (naming the file), the message
    adds what to do. Callers that know better advice (a run folder's ``prev.pt``) use
    ``problem`` with their own."""

    def __init__(self, problem: str, advice: str = ADVICE) -> None:
        self.problem = problem
        super().__init__(f"{problem}; {advice}")


def unreadable_reason(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in our words.

    torch's own messages run to paragraphs and advise ``weights_only=False``, which would run
    whatever code the file carries; dpst never does that, so it never passes that on.
    """
    text = str(error)
    if "Unsupported global" in text:
        return (
            "it holds Python objects besides tensors and plain values, which dpst does not "
            "load because loading them could run code"
        )
    if isinstance(error, pickle.UnpicklingError):
        return "it is not a PyTorch checkpoint, or it is damaged"
    return f"the file is truncated or damaged ({type(error).__name__})"


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device | None = "cpu"
) -> tuple[Generator, dict[str, Any] | None]:
    """Rebuild the generator stored at ``path``; returns ``(model in eval mode, extra)``.

    Raises:
        CheckpointError: missing, unreadable or corrupt file, not a generator checkpoint, a
            newer format, or a config or weights that do not fit this version of the network.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"generator checkpoint not found: {path}", "check the path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"{path} is not a readable checkpoint: {unreadable_reason(error)}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dpst generator checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}; this dpst ({__version__}) reads up to "
            f"{FORMAT_VERSION}",
            "upgrade dpst",
        )
    try:
        config = GeneratorConfig.from_dict(dict(payload["config"]))
        model = Generator(config)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path} does not fit this generator (written by dpst "
            f"{payload.get('dpst_version', '?')}): {_whole_first_line(error)}"
        ) from error
    if map_location is not None:
        model = model.to(map_location)
    return model.eval(), payload.get("extra")


def _whole_first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, whole (load_state_dict lists every key after)."""
    return first_line(error).rstrip(":. ")
