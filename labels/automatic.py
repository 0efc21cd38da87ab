"""Automatic masks for a command, or one region with a one-line note when none can be made.

``--masks auto`` (the default of ``dpst stylize``, ``dpst fast`` and ``dpst look``) segments
a pair (:func:`automatic_or_none`) or photos one by one (:func:`groups_or_none`: a look's
style, a content applied with a look of segmenter groups). A missing segmenter (the ``seg``
extra not installed, weights not on disk) should not fail a stylisation: the command says why
in one line and goes on with one region. A pair is segmented only from what is on this
machine. Photos one by one (``dpst fast``, ``dpst look``) are segmented torch-free from the
segmenter's ONNX file, which is fetched once when online, as VGG-19 is
(:mod:`dpst.labels.automatic_onnx`). What is missing is found torch-free
(:func:`local_segmenter_missing`), so that ``dpst fast`` without segmenter weights never
imports torch.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dpst.errors import DpstError
from dpst.labels.regions import FROM_SEGMENTER, Regions
from dpst.models.ade20k import GROUP_NAMES, relation_ids
from dpst.models.segmenter_config import SegmenterConfig

# The files a SegFormer's weights may come in (dpst.models.segformer.WEIGHT_FILES, which
# imports torch; tests/test_cli.py checks the two agree).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SEG_EXTRA = "pip install 'dpst[seg]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return False


def local_segmenter_missing(config: SegmenterConfig) -> str | None:
    """Why ``config``'s segmenter cannot run from this machine's files alone, or None when it
    can (it may still fail to load; the caller then says so). Imports neither torch nor
    transformers, and opens no connection."""
    if config.backend == "none":
        return None
    if not _installed("torch"):
        return f"the segmenter needs torch and transformers: {SEG_EXTRA}"
    if not _installed("transformers"):
        return f"the segmenter needs Hugging Face transformers: {SEG_EXTRA}"
    folder = config.weights
    if folder is None and Path(config.model).is_dir():
        folder = config.model
    if folder is not None:
        path = Path(folder)
        if (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES):
            return None
        return f"{path}: no SegFormer weights there (expected config.json and model.safetensors)"
    if _in_hf_cache(config.model, config.cache_dir):
        return None
    return (
        f"SegFormer weights {config.model!r} are not on this machine and --masks auto does not "
        f"download them: `hf download {config.model}`, or pass --seg-weights DIR"
    )


def _in_hf_cache(model: str, cache_dir: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(model, name, cache_dir=cache_dir), str)

    return cached("config.json") and any(cached(name) for name in WEIGHT_FILES)


def automatic_or_none(
    command: str,
    content,
    style,
    segmenter: SegmenterConfig,
    long_side: int,
    min_fraction: float | None = None,
    at_photo_size: bool = True,
):
    """:func:`~dpst.models.auto_labels.auto_labels_resized` from local weights only, or None
    after saying why not. Torch is imported only once the weights are known to be on disk."""
    missing = local_segmenter_missing(segmenter)
    if missing is not None:
        return _one_region(command, missing)
    from dpst.models.auto_labels import AutoLabelConfig, auto_labels_resized

    # The check above found the weights on disk: loading must not reach for the network.
    config = AutoLabelConfig(segmenter=replace(segmenter, allow_download=False))
    if min_fraction is not None:
        config = replace(config, min_fraction=min_fraction)
    try:
        return auto_labels_resized(content, style, config, long_side, at_photo_size=at_photo_size)
    except DpstError as err:
        return _one_region(command, str(err))


@dataclass(frozen=True)
class GroupLabeller:
    """One photo -> its segmenter group labels at its size (segmented on a copy of at most
    ``long_side`` px, as :func:`automatic_or_none` segments each of a pair); one segmenter
    loaded once for every photo (a folder applied with a look)."""

    segmenter: Any
    long_side: int

    @property
    def names(self) -> tuple[str, ...]:
        """The name of each group label."""
        return tuple(self.segmenter.group_names)

    @property
    def relation(self) -> dict[int, tuple[int, ...]] | None:
        """Group -> related groups for orphans (ADE20K groups), None for other label sets."""
        return relation_ids() if self.names == GROUP_NAMES else None

    def pair(self, content, style) -> Regions:
        """Both photos' groups at their sizes, before the label policy (the one pass runs it
        once, with :attr:`relation`)."""
        names = dict(enumerate(self.names))
        return Regions(self(content), self(style), FROM_SEGMENTER, names, self.relation)

    def __call__(self, image) -> Any:
        torch_free = getattr(self.segmenter, "image_groups", None)  # the ONNX segmenter's
        if torch_free is not None:
            return torch_free(image, self.long_side)
        from dpst.models.auto_labels import image_groups_resized

        return image_groups_resized(image, self.segmenter, self.long_side)


def groups_or_none(
    command: str,
    segmenter: SegmenterConfig,
    long_side: int,
    fallback: str = "one region",
    say: Callable[[str], None] | None = None,
) -> GroupLabeller | None:
    """A :class:`GroupLabeller` for photos segmented alone (every front end's ``--masks
    auto``, :mod:`dpst.labels.finder`), or None after the one line :func:`automatic_or_none`
    says (``fallback`` names what the command uses instead; ``say`` takes the line without
    the command's name, else it goes to stderr). The default
    segmenter runs torch-free from its ONNX file when that is on disk, else from the torch
    weights on disk, else from its ONNX file fetched once when online
    (:mod:`dpst.labels.automatic_onnx`). Torch is imported only once its weights are known to
    be on disk."""
    from dpst.labels.automatic_onnx import fetched_onnx, local_onnx

    onnx, why = local_onnx(segmenter)  # why: the file is there but damaged
    if onnx is not None:
        return GroupLabeller(onnx, long_side)
    missing = local_segmenter_missing(segmenter)
    if missing is not None:
        if why is None:
            onnx, why = fetched_onnx(segmenter)
            if onnx is not None:
                return GroupLabeller(onnx, long_side)
        return _one_region(command, why or missing, fallback, say)
    from dpst.models.segmenter import build_segmenter

    try:  # the check above found the weights on disk: loading must not reach for the network
        return GroupLabeller(build_segmenter(replace(segmenter, allow_download=False)), long_side)
    except DpstError as err:
        return _one_region(command, str(err), fallback, say)


def _one_region(
    command: str, why: str, fallback: str = "one region", say: Callable[[str], None] | None = None
) -> None:
    line = f"no automatic masks ({why}); using {fallback}"
    if say is None:
        print(f"dpst {command}: {line}", file=sys.stderr)
    else:
        say(line)
    return None
