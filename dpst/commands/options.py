"""Flag groups shared by the subcommands: each written once, with one meaning everywhere.

Flags that feed a config default to ``None`` ("not given"), so that the config's own
default, or a ``--config`` file, decides (:mod:`dpst.commands.resolve`). Nothing here
imports torch: building the parser must stay cheap and torch-free (``dpst fast``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from dpst.errors import InputError
from dpst.image_formats import listed as listed_image_formats
from dpst.models.segmenter_config import BACKENDS, DEFAULT_SEGFORMER, SegmenterConfig

Parser = argparse.ArgumentParser | argparse._ArgumentGroup

# What --masks means when not given, in every command that segments on its own (stylize,
# fast): one default, so that the two paths to a result never disagree about masks.
MASKS_DEFAULT = "auto"
MASKS_HELP = (
    "auto (default): regions in one order for every command: the segmenter's groups from its "
    "ONNX file, torch-free (fetched once when online, never with DPST_OFFLINE=1), or its "
    "PyTorch weights on this machine; else the weight-free regions (sky and rest); else one "
    "region; each fallback said in one line; none: one region"
)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (counts of iterations, of steps)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class DeprecatedAlias(argparse.Action):
    """A flag's old name: still works, hidden from --help, and says its new name."""

    def __init__(self, option_strings, dest, new_name: str, **kwargs) -> None:
        kwargs.setdefault("default", argparse.SUPPRESS)  # the new flag's default stands
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new_name = new_name

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        # Parsing runs before the CLI installs its one-line warning format: printed directly.
        print(
            f"{parser.prog}: warning: {option_string} is deprecated; use {self.new_name}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


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


def add_output(
    p: Parser, what: str = "output image", default: str | None = None, required: bool = True
) -> None:
    """``-o/--output`` (required unless given a default or ``required=False``, when the
    command checks it); the help lists the writable extensions (:mod:`dpst.image_formats`)."""
    formats = listed_image_formats()
    if default is not None:
        what = f"{what} (default: {default})"
    required = required and default is None
    p.add_argument(
        "-o", "--output", required=required, default=default, metavar="OUTPUT",
        help=f"{what}; {formats}",
    )  # fmt: skip


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
    p.add_argument(
        "--content-mask", metavar="MASK", help="colour-coded mask or integer label map of CONTENT"
    )
    p.add_argument(
        "--style-mask", metavar="MASK", help="colour-coded mask or integer label map of STYLE"
    )
    if kinds:
        p.add_argument(
            "--mask-kind",
            choices=("auto", "colour", "labels"),
            default="auto",
            help="how to read the mask files (default: decide from the file)",
        )


def mask_files_given(args: argparse.Namespace) -> bool:
    """Whether mask files were given; one without the other is an InputError."""

    if (args.content_mask is None) != (args.style_mask is None):
        raise InputError("give --content-mask and --style-mask together, or neither")
    return args.content_mask is not None


def add_segmenter(
    p: Parser,
    device: bool = True,
    default: str | None = "segformer",
    what: str = "segmenter (default: segformer)",
) -> None:
    """``--segmenter --seg-model --seg-weights`` (and ``--device``) for every command that
    segments (``segment``, ``stylize``, ``fast``, ``serve``, ``data pairs``); read them back
    with :func:`segmenter_config`. The names these flags once had in some commands
    (``--backend``; ``--segmenter-model``, ``--segmenter-weights``) still work, with a warning.
    """
    p.add_argument("--segmenter", choices=BACKENDS, default=default, help=what)
    p.add_argument(
        "--seg-model",
        default=DEFAULT_SEGFORMER,
        metavar="NAME",
        help=f"Hugging Face ADE20K SegFormer (default: {DEFAULT_SEGFORMER})",
    )
    p.add_argument(
        "--seg-weights",
        metavar="DIR",
        help="local folder with the model's config.json and model.safetensors",
    )
    for old, new, dest, extra in (
        ("--backend", "--segmenter", "segmenter", {"choices": BACKENDS}),
        ("--segmenter-model", "--seg-model", "seg_model", {}),
        ("--segmenter-weights", "--seg-weights", "seg_weights", {}),
    ):
        p.add_argument(old, dest=dest, action=DeprecatedAlias, new_name=new, **extra)
    if device:
        add_device(p)


def add_automatic_masks(
    p: argparse.ArgumentParser,
    default: str,
    what: str,
    title: str,
    device: bool = False,
) -> None:
    """``--masks auto|none`` and the segmenter's flags, in a group titled ``title``."""
    group = p.add_argument_group(title)
    group.add_argument("--masks", choices=("auto", "none"), default=default, help=what)
    add_segmenter(group, device=device)


def auto_masks(args: argparse.Namespace, long_side: int | None = None, **changes):
    """What ``--masks auto`` may use as the flags say (:class:`dpst.labels.finder.AutoMasks`),
    or None for ``--masks none``; for every command alike (``long_side``: the side photos are
    segmented at, default the one pass's; ``changes``: the segmenter's, e.g. its device)."""
    from dpst.labels.finder import AutoMasks

    if args.masks != "auto":
        return None
    auto = AutoMasks(segmenter_config(args, **changes))
    return auto if long_side is None else replace(auto, long_side=long_side)


def segmenter_config(args: argparse.Namespace, **changes) -> SegmenterConfig:
    """The segmenter the flags name (``changes`` override fields, e.g. the device)."""
    config = SegmenterConfig(
        backend=args.segmenter,
        model=args.seg_model,
        weights=args.seg_weights,
        device=getattr(args, "device", None) or "auto",
    )
    return replace(config, **changes)
