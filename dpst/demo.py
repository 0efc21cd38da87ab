"""``dpst demo``: the main job on a bundled example pair, in a few minutes on a CPU.

The photos are scikit-image's samples (nothing is committed). The run is the reference
optimiser with the multi-scale schedule at a small size; its report says which backbone ran,
and a random stand-in for VGG-19 must be asked for by name (``--backbone random``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_CONTENT = "rocket"
DEMO_STYLE = "coffee"
DEMO_SIZE = 256
DEMO_ITERS = 200


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="outputs/demo.png", help="output image")
    p.add_argument("--content", default=DEMO_CONTENT, help="scikit-image sample photo name")
    p.add_argument("--style", default=DEMO_STYLE, help="scikit-image sample photo name")
    p.add_argument(
        "--backbone",
        choices=("vgg19", "random"),
        default="vgg19",
        help="vgg19 needs the weights (see README); random is a seeded stand-in",
    )
    p.add_argument("--vgg-weights", help="path to VGG-19 weights (or env DPST_VGG_WEIGHTS)")
    p.add_argument("--size", type=int, default=DEMO_SIZE, help="working long side")
    p.add_argument("--iters", type=int, default=DEMO_ITERS, help="iterations per stage")
    p.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from dpst.data.samples import SAMPLE_PHOTOS, sample_image
    from dpst.errors import InputError
    from dpst.imageio import write_image, write_json
    from dpst.optim_reference.postfilter import PostFilterConfig
    from dpst.optim_reference.stylize import StylizeConfig, stylize
    from dpst.optim_reference.vgg import BackboneConfig

    for name in (args.content, args.style):
        if name not in SAMPLE_PHOTOS:
            raise InputError(f"unknown sample photo {name!r} (choose from {SAMPLE_PHOTOS})")
    content = sample_image(args.content, None)
    style = sample_image(args.style, None)
    cfg = StylizeConfig(
        size=args.size,
        iters=args.iters,
        multiscale=True,
        device=args.device,
        post=PostFilterConfig(mode="fast"),
    )
    backbone = BackboneConfig(name=args.backbone, weights=args.vgg_weights)
    print(
        f"demo: {args.content} in the look of {args.style}, {args.size} px, "
        f"backbone {args.backbone}"
    )
    result = stylize(content, style, config=cfg, backbone=backbone)
    out = Path(args.output)
    write_image(out, result.image)
    report = {**result.report, "inputs": {"content": args.content, "style": args.style}}
    write_json(out.with_name(out.name + ".json"), report)

    # content | style | output, at the output's height, for a quick look.
    h = result.image.shape[0]
    panels = []
    from dpst.imageio import resize_long_side

    for img in (content, style, result.image):
        scale = h / img.shape[0]
        panels.append(resize_long_side(img, round(max(img.shape[:2]) * scale))[:h])
    strip = np.concatenate(
        [np.pad(p, ((0, h - p.shape[0]), (0, 4), (0, 0)), constant_values=1.0) for p in panels],
        axis=1,
    )
    write_image(out.with_name(out.stem + "_compare.png"), strip)
    note = (
        "  (RANDOM backbone: colours move, but this is not VGG-19)"
        if report["backbone"]["random"]
        else ""
    )
    print(
        f"wrote {out}, {out.name}.json and {out.stem}_compare.png in "
        f"{report['seconds']:.0f} s{note}"
    )
    return 0
