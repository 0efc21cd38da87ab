"""``dpst segment CONTENT STYLE --out-dir DIR``: automatic masks to inspect and edit.

Writes, for the content and the style photo, the colour-coded mask and the label PNG
(``content_mask.png``, ``content_labels.png``, ``style_mask.png``, ``style_labels.png``),
a side-by-side overlay with a legend (``overlay.png``) and a report (``segment.json``).
Either mask file can be given back to ``dpst stylize`` after editing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dpst.commands import options
from dpst.errors import InputError

OUTPUT_FILES = {
    "content_mask": "content_mask.png",
    "content_labels": "content_labels.png",
    "style_mask": "style_mask.png",
    "style_labels": "style_labels.png",
    "overlay": "overlay.png",
    "report": "segment.json",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", metavar="CONTENT", help="content photo")
    p.add_argument("style", metavar="STYLE", help="style (reference) photo")
    p.add_argument(
        "--out-dir", required=True, metavar="DIR", help="folder for the masks, overlay and report"
    )
    options.add_segmenter(p)
    options.add_min_region(p, default=0.0)


def run(args: argparse.Namespace) -> int:
    from dpst.imageio import read_image, write_image, write_json
    from dpst.labels.images import (
        MASK_PALETTE,
        overlay,
        side_by_side,
        write_colour_mask,
        write_label_png,
    )
    from dpst.models.auto_labels import AutoLabelConfig, auto_labels

    if not 0.0 <= args.min_region < 1.0:
        raise InputError(f"--min-region must be in [0, 1), got {args.min_region}")
    content = read_image(args.content)
    style = read_image(args.style)
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out-dir {out}: exists and is not a folder")
    config = AutoLabelConfig(segmenter=options.segmenter_config(args), min_fraction=args.min_region)
    result = auto_labels(content, style, config)
    report = result.report
    names = report["label_names"]

    files = {key: out / name for key, name in OUTPUT_FILES.items()}
    write_colour_mask(files["content_mask"], result.content)
    write_label_png(files["content_labels"], result.content)
    write_colour_mask(files["style_mask"], result.style)
    write_label_png(files["style_labels"], result.style)
    present = sorted(set(map(int, result.content.flat)) | set(map(int, result.style.flat)))
    legend = [(names[i], MASK_PALETTE[i][1]) for i in present]
    picture = side_by_side(
        overlay(content, result.content), overlay(style, result.style), legend=legend
    )
    write_image(files["overlay"], picture)
    report["inputs"] = {"content": str(args.content), "style": str(args.style)}
    report["outputs"] = {key: str(path) for key, path in files.items()}
    write_json(files["report"], report)

    print(f"segmenter: {_describe(report['segmenter'])}")
    for side in ("content", "style"):
        groups = ", ".join(f"{k} {v:.0%}" for k, v in report[side]["groups"].items())
        print(f"{side}: {groups}")
    for title, key in (
        ("small regions merged (in both photos)", "merged"),
        ("content groups the style lacks, remapped", "orphans"),
    ):
        if report[key]:
            print(f"{title}: " + ", ".join(f"{a} -> {b}" for a, b in report[key].items()))
    print(f"wrote {out}/ ({', '.join(OUTPUT_FILES.values())})")
    return 0


def _describe(info: dict) -> str:
    if info["backend"] == "none":
        return "none (one region)"
    return f"{info['backend']} {info['model']} ({info['weights_from']}, {info['device']})"
