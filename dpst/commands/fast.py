"""``dpst fast CONTENT STYLE -o OUT``: one pass of the exported generator, without torch.

A thin layer over :class:`dpst.serve.runtime.FastStylizer`. Masks are read as ``dpst
stylize`` reads them (:mod:`dpst.optim_reference.mask_files`, torch-free): colour masks in the
paper's palette or label maps, prepared as the demo prepares them
(:mod:`dpst.serve.one_pass_labels`: the paper's label rule, then labels 0..n-1). No torch is
imported on this path; ``--masks auto`` (the default, as in ``dpst stylize``: segment both
photos when no mask files are given) is the exception when the segmenter's weights are on
disk, since the segmenter needs torch; without them it says so in one line, torch-free.
"""

from __future__ import annotations

import argparse

from dpst.commands import options


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="MODEL.onnx",
        help="the stylizer .onnx from dpst export (default: $DPST_MODEL, else "
        "~/.cache/dpst/model.onnx if present, else the model bundled with dpst)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="the photo to restyle")
    p.add_argument("style", help="the photo whose look to take")
    options.add_output(p)
    add_model(p)
    options.add_mask_files(p, kinds=True)
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    options.add_automatic_masks(
        p, options.MASKS_DEFAULT, options.MASKS_HELP + " (torch is imported only to segment)",
        "masks when no mask files are given", device=True,
    )  # fmt: skip


def _labels(args: argparse.Namespace, content, style):
    """The label maps at the photos' sizes as read or segmented; ``(None, None)``: one region."""
    from dpst.optim_reference.mask_files import read_mask

    if options.mask_files_given(args):
        return (
            read_mask(args.content_mask, content.shape[:2], args.mask_kind),
            read_mask(args.style_mask, style.shape[:2], args.mask_kind),
        )
    # The only part of dpst fast that may import torch: the segmenter, when its weights are
    # on disk (automatic_or_none checks that first, torch-free).
    if args.masks == "auto" and args.segmenter != "none":
        from dpst.commands.auto_masks import automatic_or_none
        from dpst.serve.one_pass_labels import LABEL_WORK_SIDE

        segmenter = options.segmenter_config(args)
        found = automatic_or_none("fast", content, style, segmenter, LABEL_WORK_SIDE)
        if found is not None:
            return found.content, found.style
    return None, None


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from dpst.commands.outputs import check_image_output, write_image_or_rescue
    from dpst.imageio import read_image
    from dpst.serve.runtime import (
        BUNDLED_MODEL,
        DEFAULT_MODEL_PATH,
        MODEL_ENV,
        FastStylizer,
        RuntimeModelError,
        default_model_path,
    )

    start = time.perf_counter()
    options.mask_files_given(args)
    inputs = {
        "content photo": args.content,
        "style photo": args.style,
        "--content-mask": args.content_mask,
        "--style-mask": args.style_mask,
        "--model": args.model,
    }
    out = check_image_output(args.output, inputs)
    model_path = args.model or default_model_path()
    if model_path is None:
        raise RuntimeModelError(
            f"no fast model: pass --model, set {MODEL_ENV}, or export one to "
            f"{DEFAULT_MODEL_PATH} (dpst export CHECKPOINT -o {DEFAULT_MODEL_PATH})"
        )
    content, style = read_image(args.content), read_image(args.style)
    # The model first: a bad one costs one line, before any note about masks.
    stylizer = FastStylizer(model_path, threads=args.threads)
    content_labels, style_labels = _labels(args, content, style)
    if content_labels is not None:
        content_labels, style_labels, _ = stylizer.prepare_labels(
            content, style, content_labels, style_labels
        )
    loaded = time.perf_counter()
    result = stylizer.stylize(content, style, content_labels, style_labels)
    done = time.perf_counter()
    write_image_or_rescue(out, result)
    height, width = result.shape[:2]
    which = "the bundled model" if Path(model_path) == BUNDLED_MODEL else str(model_path)
    print(
        f"wrote {args.output} ({width}x{height}) in {time.perf_counter() - start:.2f} s "
        f"({which}: {done - loaded:.2f} s on {stylizer.provider})"
    )
    return 0
