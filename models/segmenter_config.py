"""Which segmenter to build, and its command-line options: no torch here.

Kept apart from :mod:`dpst.models.segmenter` so that building the ``dpst`` parser (which
every command, ``--help`` included, does) never imports torch.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

BACKENDS = ("segformer", "none")
DEFAULT_SEGFORMER = "nvidia/segformer-b0-finetuned-ade-512-512"


@dataclass(frozen=True)
class SegmenterConfig:
    """Which segmenter to build and where its weights come from.

    ``model`` names a Hugging Face model (larger ADE20K SegFormers, e.g.
    ``nvidia/segformer-b5-finetuned-ade-640-640``, work too); ``weights`` is a local folder
    written by ``save_pretrained`` or ``hf download NAME --local-dir DIR`` and wins over
    ``model``. ``device`` "auto" means CUDA when present, else CPU. Downloads are also off
    when the environment sets ``HF_HUB_OFFLINE=1`` or ``DPST_OFFLINE=1``.
    """

    backend: str = "segformer"
    model: str = DEFAULT_SEGFORMER
    weights: str | None = None
    device: str = "auto"
    cache_dir: str | None = None
    allow_download: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"segmenter backend must be one of {BACKENDS}, got {self.backend!r}")


def add_segmenter_arguments(p: argparse.ArgumentParser, device: bool = True) -> None:
    """``--backend --seg-model --seg-weights`` (and ``--device``) for any command that
    segments; read them back with :func:`segmenter_config_from_args`."""
    p.add_argument(
        "--backend", choices=BACKENDS, default="segformer", help="segmenter (default: segformer)"
    )
    p.add_argument(
        "--seg-model",
        default=DEFAULT_SEGFORMER,
        help=f"Hugging Face ADE20K SegFormer (default: {DEFAULT_SEGFORMER})",
    )
    p.add_argument(
        "--seg-weights",
        metavar="DIR",
        help="local folder with the model's config.json and model.safetensors",
    )
    if device:
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def segmenter_config_from_args(args: argparse.Namespace) -> SegmenterConfig:
    return SegmenterConfig(
        backend=args.backend,
        model=args.seg_model,
        weights=args.seg_weights,
        device=getattr(args, "device", "auto"),
    )
