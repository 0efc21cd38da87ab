"""Flag groups shared by the subcommands: each written once, with one meaning everywhere.

Flags that feed a config default to ``None`` ("not given"), so that the config's own
default, or a ``--config`` file, decides (:mod:`dpst.commands.resolve`). Nothing here
imports torch: building the parser must stay cheap and torch-free (``dpst fast``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from dpst.models.segmenter_config import BACKENDS, DEFAULT_SEGFORMER, SegmenterConfig

Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def add_backbone(p: Parser, what: str = "the objective's network") -> None:
    """``--backbone`` and ``--vgg-weights`` (read with ``resolve.backbone_values``)."""
    p.add_argument(
        "--backbone",
        choices=("vgg19", "random"),
        help=f"{what}: vgg19 (the Caffe weights, downloaded on first use; the default) or "
        "random (a seeded stand-in for offline smoke runs and tests; not the method)",
    )
    p.add_argument(
        "--vgg-weights",
        metavar="PATH",
        help="VGG-19 weights file (or env DPST_VGG_WEIGHTS), or 'torchvision' for "
        "torchvision's weights (loss weights not calibrated for them)",
    )


def add_device(p: Parser, what: str = "") -> None:
    p.add_argument("--device", help=f"auto, cpu, cuda or cuda:N{what} (default: auto)")


def add_config(p: Parser, what: str) -> None:
    p.add_argument(
        "--config", metavar="FILE", help=f"JSON {what} (or a previous run's report) to start from"
    )


def add_quiet(p: Parser, what: str = "no progress bar") -> None:
    p.add_argument("--quiet", action="store_true", help=what)


def add_output(p: Parser, what: str = "output image (.png, .jpg, .tif, .webp or .bmp)") -> None:
    p.add_argument("-o", "--output", required=True, help=what)


def add_min_region(p: Parser, default: float | None = None) -> None:
    p.add_argument(
        "--min-region",
        type=float,
        default=default,
        metavar="FRACTION",
        help="merge regions under this fraction of either image into a neighbour, in both "
        "alike (default 0: none, as the published code)",
    )


def add_mask_files(p: Parser, kinds: bool = False) -> None:
    """``--content-mask`` and ``--style-mask`` (both or neither), and ``--mask-kind``."""
    p.add_argument("--content-mask", help="colour-coded mask or integer label map of CONTENT")
    p.add_argument("--style-mask", help="colour-coded mask or integer label map of STYLE")
    if kinds:
        p.add_argument(
            "--mask-kind",
            choices=("auto", "colour", "labels"),
            default="auto",
            help="how to read the mask files (default: decide from the file)",
        )


def mask_files_given(args: argparse.Namespace) -> bool:
    """Whether mask files were given; one without the other is an InputError."""
    from dpst.errors import InputError

    if (args.content_mask is None) != (args.style_mask is None):
        raise InputError("give --content-mask and --style-mask together, or neither")
    return args.content_mask is not None


def add_segmenter(p: Parser, device: bool = True) -> None:
    """``--backend --seg-model --seg-weights`` (and ``--device``) for any command that
    segments; read them back with :func:`segmenter_config`."""
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
        add_device(p)


def add_automatic_masks(
    p: argparse.ArgumentParser, default: str, what: str, title: str, device: bool = False
) -> None:
    """``--masks auto|none`` and the segmenter's flags, in a group titled ``title``."""
    group = p.add_argument_group(title)
    group.add_argument("--masks", choices=("auto", "none"), default=default, help=what)
    add_segmenter(group, device=device)


def segmenter_config(args: argparse.Namespace, **changes) -> SegmenterConfig:
    """The segmenter the flags name (``changes`` override fields, e.g. the device)."""
    config = SegmenterConfig(
        backend=args.backend,
        model=args.seg_model,
        weights=args.seg_weights,
        device=getattr(args, "device", None) or "auto",
    )
    return replace(config, **changes)
