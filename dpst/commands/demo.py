"""``dpst demo``: the main job on a bundled example pair.

The photos are scikit-image's samples (nothing is committed). By default the run is one pass
of the model shipped in the package (ONNX Runtime, no torch, seconds on a CPU). With
``--quality`` it is the reference optimiser with the multi-scale schedule at a small size
(minutes); its report says which backbone ran, and a random stand-in for VGG-19 must be asked
for by name (``--backbone random``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dpst.commands import options
from dpst.commands.fast import add_model
from dpst.errors import InputError
from dpst.serve.runtime.pipeline import run_pair

# scikit-image's colour photographs that need no download (as dpst.data.samples).
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")

DEMO_CONTENT = "rocket"
DEMO_STYLE = "coffee"
DEMO_SIZE = 256
DEMO_ITERS = 200


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_output(p, default="outputs/demo.png")
    names = ", ".join(SAMPLE_PHOTOS)
    for flag, default in (("--content", DEMO_CONTENT), ("--style", DEMO_STYLE)):
        p.add_argument(
            flag, default=default, metavar="NAME",  # checked by _sample: one line
            help=f"a scikit-image sample photo: {names} (default: {default})",
        )  # fmt: skip
    p.add_argument(
        "--quality",
        action="store_true",
        help="run the reference optimiser (minutes) instead of one pass of the bundled model",
    )
    add_model(p, "with one pass: the stylizer .onnx from dpst export")
    options.add_backbone(p, "with --quality")
    p.add_argument(
        "--size", type=int, metavar="PX", help=f"with --quality: working long side ({DEMO_SIZE})"
    )
    p.add_argument(
        "--iters",
        type=options.positive_int,
        metavar="N",
        help=f"with --quality: iterations per stage ({DEMO_ITERS})",
    )
    options.add_device(p, " (with --quality)")


def _sample(name: str):
    """A scikit-image sample photo, float32 (H,W,3) in [0,1] (torch-free)."""
    import numpy as np
    import skimage.data

    if name not in SAMPLE_PHOTOS:
        raise InputError(f"unknown sample photo {name!r} (choose from {SAMPLE_PHOTOS})")
    return getattr(skimage.data, name)().astype(np.float32) / 255.0


def run(args: argparse.Namespace) -> int:
    from dpst.commands.outputs import check_image_output, write_image_or_rescue
    from dpst.imageio import write_image

    # The inputs are bundled samples, so -o clashes with nothing; the rest is checked first.
    out = check_image_output(args.output, {})
    content, style = _sample(args.content), _sample(args.style)
    if args.quality:
        image, report, note = _quality(args, content, style)
    else:
        image, report, note = _one_pass(args, content, style)
    report = {**report, "inputs": {"content": args.content, "style": args.style}}
    write_image_or_rescue(out, image, report)
    write_image(out.with_name(out.stem + "_compare.png"), image_row([content, style, image]))
    height, width = image.shape[:2]
    print(
        f"wrote {out} ({width}x{height}), {out.name}.json and {out.stem}_compare.png (content | "
        f"style | result) in {report['seconds']:.1f} s{note}"
    )
    return 0


def _one_pass(args, content, style):

    from dpst.serve.runtime.stylizer import (
        MODEL_ENV,
        FastStylizer,
        RuntimeModelError,
        default_model_path,
    )

    path = args.model or default_model_path()
    if path is None:
        raise RuntimeModelError(
            f"no fast model: this checkout has no bundled model; pass --model, set {MODEL_ENV}, "
            f"or run dpst demo --quality"
        )
    print(f"demo: {args.content} in the look of {args.style}, one pass of {path}")
    start = time.perf_counter()
    stylizer = FastStylizer(path)
    image, regions = run_pair(stylizer, content, style, dtype=np.float32)
    meta = stylizer.metadata
    report = {
        "mode": "one pass",
        "model": str(path),
        "model_id": meta.get("model_id"),
        "provider": stylizer.provider,
        # Named, not a pair: the console says width x height, a shape says height, width.
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "seconds": round(time.perf_counter() - start, 3),
        **regions,
    }
    return image, report, ""


def _quality(args, content, style):
    from dpst.commands.resolve import backbone_values, resolve
    from dpst.config import validated
    from dpst.optim_reference.postfilter import PostFilterConfig
    from dpst.optim_reference.stylize import StylizeConfig, stylize
    from dpst.optim_reference.vgg import BackboneConfig

    # The demo's own defaults: small, multi-scale, the fast post-filter (minutes on a CPU).
    defaults = StylizeConfig(
        size=DEMO_SIZE, iters=DEMO_ITERS, multiscale=True, post=PostFilterConfig(mode="fast")
    )
    flags = {"size": "size", "iters": "iters", "device": "device"}
    cfg = validated(resolve(defaults, args, flags))
    backbone = resolve(BackboneConfig(), args, given=backbone_values(args))
    print(
        f"demo: {args.content} in the look of {args.style}, the optimiser at {cfg.size} px, "
        f"backbone {backbone.name}"
    )
    result = stylize(content, style, config=cfg, backbone=backbone)
    random = result.report["backbone"]["random"]
    note = "  (RANDOM backbone: colours move, but this is not VGG-19)" if random else ""
    return result.image, result.report, note


def image_row(images: list, height: int | None = None, gap: int = 4):
    """Images (H,W,3) in [0,1] in a row at one height (the last one's), white gaps."""
    import numpy as np

    from dpst.imageio import resize_long_side

    height = height or images[-1].shape[0]
    panels = []
    for img in images:
        scale = height / img.shape[0]
        panel = resize_long_side(img, round(max(img.shape[:2]) * scale))[:height]
        panels.append(np.pad(panel, ((0, height - panel.shape[0]), (0, gap), (0, 0)),
                             constant_values=1.0))  # fmt: skip
    return np.concatenate(panels, axis=1)
