"""``dpst fast CONTENT STYLE -o OUT``: one pass of the exported generator, without torch.

A thin layer over :class:`dpst.serve.runtime.FastStylizer`. Masks are read as ``dpst
stylize`` reads them (:mod:`dpst.optim_reference.mask_files`, torch-free): colour masks in the
paper's palette or label maps, prepared as the demo prepares them
(:mod:`dpst.serve.one_pass_labels`: the paper's label rule, then labels 0..n-1). No torch is
imported on this path; ``--masks auto`` (segment both photos when no mask files are given) is
the exception, since the segmenter needs torch.
"""

from __future__ import annotations

import argparse

# Automatic masks are computed at this long side, then resized to each photo.
SEGMENT_LONG_SIDE = 512


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.models.segmenter_config import add_segmenter_arguments

    p.add_argument("content", help="the photo to restyle")
    p.add_argument("style", help="the photo whose look to take")
    p.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    p.add_argument(
        "--model",
        default=None,
        help="the stylizer .onnx from dpst export (default: $DPST_MODEL, else "
        "~/.cache/dpst/model.onnx if present, else the model bundled with dpst)",
    )
    p.add_argument("--content-mask", default=None, help="colour mask or label map of CONTENT")
    p.add_argument("--style-mask", default=None, help="colour mask or label map of STYLE")
    p.add_argument(
        "--mask-kind",
        choices=("auto", "colour", "labels"),
        default="auto",
        help="how to read the mask files (default: decide from the file)",
    )
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    group = p.add_argument_group("automatic masks (when no mask files are given; needs torch)")
    group.add_argument(
        "--masks",
        choices=("none", "auto"),
        default="none",
        help="auto: segment both photos when a segmenter is available (else one region); "
        "none (default): one region, and no torch import",
    )
    add_segmenter_arguments(group)


def automatic_labels(args: argparse.Namespace, content, style):
    """Label maps from the segmenter at the photos' sizes, or ``(None, None)`` with a note.

    The only part of ``dpst fast`` that imports torch (through the segmenter).
    """
    import sys

    from dpst.errors import DpstError
    from dpst.imageio import resize_long_side
    from dpst.models.auto_labels import AutoLabelConfig, auto_labels
    from dpst.models.segmenter_config import segmenter_config_from_args
    from dpst.optim_reference.mask_files import resize_labels

    def small(image):
        return resize_long_side(image, min(SEGMENT_LONG_SIDE, max(image.shape[:2])))

    config = AutoLabelConfig(segmenter=segmenter_config_from_args(args))
    try:
        found = auto_labels(small(content), small(style), config)
    except DpstError as err:
        print(f"dpst fast: no automatic masks ({err}); using one region", file=sys.stderr)
        return None, None
    return resize_labels(found.content, content.shape[:2]), resize_labels(
        found.style, style.shape[:2]
    )


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from dpst.errors import InputError
    from dpst.imageio import read_image, write_image
    from dpst.optim_reference.mask_files import read_mask
    from dpst.serve.runtime import (
        BUNDLED_MODEL,
        DEFAULT_MODEL_PATH,
        MODEL_ENV,
        FastStylizer,
        RuntimeModelError,
        default_model_path,
    )

    start = time.perf_counter()
    if (args.content_mask is None) != (args.style_mask is None):
        raise InputError("give --content-mask and --style-mask together, or neither")
    model_path = args.model or default_model_path()
    if model_path is None:
        raise RuntimeModelError(
            f"no fast model: pass --model, set {MODEL_ENV}, or export one to "
            f"{DEFAULT_MODEL_PATH} (dpst export CHECKPOINT -o {DEFAULT_MODEL_PATH})"
        )
    content, style = read_image(args.content), read_image(args.style)
    content_labels = style_labels = None
    if args.content_mask is not None:
        content_labels = read_mask(args.content_mask, content.shape[:2], args.mask_kind)
        style_labels = read_mask(args.style_mask, style.shape[:2], args.mask_kind)
    elif args.masks == "auto":
        content_labels, style_labels = automatic_labels(args, content, style)
    stylizer = FastStylizer(model_path, threads=args.threads)
    if content_labels is not None:
        content_labels, style_labels, _ = stylizer.prepare_labels(
            content, style, content_labels, style_labels
        )
    loaded = time.perf_counter()
    result = stylizer.stylize(content, style, content_labels, style_labels)
    done = time.perf_counter()
    write_image(args.output, result)
    height, width = result.shape[:2]
    which = "the bundled model" if Path(model_path) == BUNDLED_MODEL else str(model_path)
    print(
        f"wrote {args.output} ({width}x{height}) in {time.perf_counter() - start:.2f} s "
        f"({which}: {done - loaded:.2f} s on {stylizer.provider})"
    )
    return 0
