"""``dpst stylize``: the reference optimiser, with automatic masks when none are given.

A thin layer: the optimiser's options and run live in ``optim_reference/cli.py``; this adds
the segmenter (``models``), which ``optim_reference`` may not import.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.models.segmenter_config import add_segmenter_arguments
    from dpst.optim_reference import cli as optimiser_cli

    optimiser_cli.add_arguments(p)
    group = p.add_argument_group("automatic masks (when no mask files are given)")
    group.add_argument(
        "--masks",
        choices=("auto", "none"),
        default="auto",
        help="auto: segment both photos when a segmenter is available, else one region",
    )
    add_segmenter_arguments(group, device=False)


def automatic_masks(args: argparse.Namespace):
    """The ``auto_masks`` hook for ``optim_reference.cli.run``: segment at the working size.

    When no segmenter can be built (extra not installed, weights missing), say so in one line
    and fall back to one region rather than failing the run.
    """

    def provide(content, style, cfg):
        from dpst.errors import DpstError
        from dpst.imageio import resize_long_side
        from dpst.models.auto_labels import AutoLabelConfig, auto_labels
        from dpst.models.segmenter_config import segmenter_config_from_args

        seg = replace(segmenter_config_from_args(args), device=cfg.device)
        config = AutoLabelConfig(segmenter=seg, min_fraction=cfg.labels.min_fraction)
        try:
            found = auto_labels(
                resize_long_side(content, min(cfg.size, max(content.shape[:2]))),
                resize_long_side(style, min(cfg.size, max(style.shape[:2]))),
                config,
            )
        except DpstError as err:
            print(f"dpst stylize: no automatic masks ({err}); using one region", file=sys.stderr)
            return None
        return found.content, found.style, found.report

    return provide


def run(args: argparse.Namespace) -> int:
    from dpst.optim_reference import cli as optimiser_cli

    hook = automatic_masks(args) if args.masks == "auto" else None
    return optimiser_cli.run(args, auto_masks=hook)
