"""``dpst demo``: the main job on a bundled example pair.

The photos are the example pairs shipped in the package (:mod:`dpst.serve.examples`: public
domain / CC0 photos with region masks, credits beside them), so the demo shows the method's
point: each region (sky, water, trees, ...) takes the look of the same region of the style.
By default the run is one pass of the model shipped in the package (ONNX Runtime, no torch,
seconds on a CPU). With ``--quality`` it is the reference optimiser with the multi-scale
schedule at a small size (minutes); its report says which backbone ran, and a random
stand-in for VGG-19 must be asked for by name (``--backbone random``).

Besides the result (``-o``) and its report, the demo writes a side-by-side (content | style |
result, the two masks and their legend under it): ``--compare``, by default
``<output stem>_compare.png``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dpst.commands import options
from dpst.commands.fast import add_model
from dpst.errors import InputError
from dpst.labels.regions import FROM_MASK_FILES, Regions
from dpst.serve.runtime.pipeline import run_pair

# The pair the README shows (dpst.serve.examples; `dpst demo --help` lists them all).
DEMO_EXAMPLE = "lake-dawn"
DEMO_SIZE = 256
DEMO_ITERS = 200


def _names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(example names, photo names) for the help; empty when the files are missing."""
    from dpst.serve import examples

    try:
        return examples.example_names(), examples.photo_names()
    except OSError:
        return (), ()


def add_arguments(p: argparse.ArgumentParser) -> None:
    pairs, photos = _names()
    options.add_output(p, default="outputs/demo.png")
    p.add_argument(
        "--example",
        default=DEMO_EXAMPLE,
        metavar="NAME",
        help=f"the bundled pair ({', '.join(pairs)}; default {DEMO_EXAMPLE})",
    )
    photo_help = f"a bundled photo, with its mask, instead of the pair's ({', '.join(photos)})"
    p.add_argument("--content", metavar="NAME", help=photo_help)
    p.add_argument("--style", metavar="NAME", help=photo_help)
    p.add_argument(
        "--compare",
        metavar="PATH",
        help="where the side-by-side goes (default: <output stem>_compare.png beside -o)",
    )
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


class DemoPair:
    """The photos, label maps and region names of the pair asked for."""

    def __init__(self, args: argparse.Namespace) -> None:
        from dpst.serve import examples

        example = examples.get_example(args.example)
        self.content_name = args.content or example.content.stem
        self.style_name = args.style or example.style.stem
        self.content, self.content_labels, c_names = examples.read_photo_and_labels(
            self.content_name
        )
        self.style, self.style_labels, s_names = examples.read_photo_and_labels(self.style_name)
        self.names = {**s_names, **c_names}
        c_file, self.content_mask, c_example = examples.photo_files(self.content_name)
        s_file, self.style_mask, s_example = examples.photo_files(self.style_name)
        self.legend = _legend(c_example, s_example, self.content_labels, self.style_labels)
        self.report = {
            "example": example.name if (c_example, s_example) == (example, example) else None,
            "content": c_file.name,
            "style": s_file.name,
            "content_mask": self.content_mask.name,
            "style_mask": self.style_mask.name,
        }

    def regions(self) -> Regions:
        return Regions(self.content_labels, self.style_labels, FROM_MASK_FILES, self.names)


def _legend(c_example, s_example, content_labels, style_labels):
    """(name, colour) of every region in either mask, the content pair's order first."""
    present = set(np.unique(content_labels).tolist()) | set(np.unique(style_labels).tolist())
    seen: dict[str, tuple[int, int, int]] = {}
    for example in (c_example, s_example):
        ids = example.label_names()
        for (name, rgb), label in zip(example.legend(), ids, strict=True):
            if label in present:
                seen.setdefault(name, rgb)
    return list(seen.items())


def run(args: argparse.Namespace) -> int:
    from dpst.commands.outputs import check_image_output, write_image_or_rescue
    from dpst.imageio import write_image

    # The inputs are bundled files, so -o clashes with nothing; the rest is checked first.
    out = check_image_output(args.output, {})
    compare = out.with_name(out.stem + "_compare.png")
    if args.compare:
        compare = check_image_output(args.compare, {})
        if compare.resolve() == out.resolve():
            raise InputError(f"--compare {compare} is the result's own file (-o)")
    pair = DemoPair(args)
    if args.quality:
        image, report, note = _quality(args, pair)
    else:
        image, report, note = _one_pass(args, pair)
    report = {**report, "inputs": pair.report}
    write_image_or_rescue(out, image, report)
    write_image(compare, compare_image(pair, image))
    regions = ", ".join(report["regions"]) or "one region"
    height, width = image.shape[:2]
    print(
        f"wrote {out} ({width}x{height}), {out.name}.json and {compare} (content | style | "
        f"result, masks under them) in {report['seconds']:.1f} s; regions: {regions}{note}"
    )
    return 0


def _one_pass(args, pair: DemoPair):
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
    print(f"demo: {pair.content_name} in the look of {pair.style_name}, one pass of {path}")
    start = time.perf_counter()
    stylizer = FastStylizer(path)
    image, regions = run_pair(stylizer, pair.content, pair.style, pair.regions(), dtype=np.float32)
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


def _quality(args, pair: DemoPair):
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
        f"demo: {pair.content_name} in the look of {pair.style_name}, the optimiser at "
        f"{cfg.size} px, backbone {backbone.name}"
    )
    result = stylize(
        pair.content, pair.style, pair.content_labels, pair.style_labels, config=cfg,
        backbone=backbone,
    )  # fmt: skip
    labels = result.report["labels"]
    names = [] if labels.get("one_region") else [pair.names.get(i, f"label {i}")
                                                  for i in labels["label_ids"]]  # fmt: skip
    report = {**result.report, "regions": names, "region_source": FROM_MASK_FILES}
    random = result.report["backbone"]["random"]
    note = "  (RANDOM backbone: colours move, but this is not VGG-19)" if random else ""
    return result.image, report, note


MASK_ROW_FRACTION = 0.25  # the masks' row, as a fraction of the photos' height


def compare_image(pair: DemoPair, result: np.ndarray, gap: int = 4) -> np.ndarray:
    """content | style | result at the result's height; under the content and the style
    their masks (a quarter as tall), under the result each region's colour and name."""
    from PIL import Image, ImageDraw, ImageFont

    height = result.shape[0]
    top = image_row([pair.content, pair.style, result], gap=gap)
    small = max(32, round(height * MASK_ROW_FRACTION))
    row = Image.new("RGB", (top.shape[1], small + gap), "white")
    x = 0
    for photo, mask_file in ((pair.content, pair.content_mask), (pair.style, pair.style_mask)):
        with Image.open(mask_file) as mask:
            width = round(mask.width * small / mask.height)
            row.paste(mask.convert("RGB").resize((width, small), Image.Resampling.NEAREST),
                      (x, gap))  # fmt: skip
        x += round(photo.shape[1] * height / photo.shape[0]) + gap
    line = min(small // max(1, len(pair.legend)), max(12, small // 3))
    try:
        font = ImageFont.load_default(size=max(10, round(line * 0.7)))
    except TypeError:  # Pillow without FreeType sizes: the fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(row)
    for k, (name, rgb) in enumerate(pair.legend):
        y = gap + k * line
        box = max(6, round(line * 0.7))
        draw.rectangle([x, y + (line - box) // 2, x + box, y + (line - box) // 2 + box],
                       fill=rgb, outline=(0, 0, 0))  # fmt: skip
        draw.text((x + box + 6, y + line // 2), name, fill=(0, 0, 0), font=font, anchor="lm")
    bottom = np.asarray(row, dtype=np.float32) / np.float32(255)
    return np.concatenate([top, bottom], axis=0)


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
