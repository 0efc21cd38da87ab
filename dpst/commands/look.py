"""``dpst look``: a style photo as a reusable look file, and a result as a 3D LUT.

    dpst look STYLE -o look.dpst [--style-mask M | --masks auto|none]
    dpst look export CONTENT (STYLE | --look look.dpst) -o look.cube [--lut-size 33] [--hald h.png]
                     [--strength S]

The first encodes a style photo once (:mod:`dpst.serve.runtime.looks`); ``dpst fast CONTENT --look
look.dpst`` applies it without the photo. Its regions are the mask file's, else (``--masks
auto``, the default, as ``dpst fast``'s, in the order of :mod:`dpst.labels.finder`) the
segmenter's groups of the style photo, else its weight-free regions (sky and rest), else one
region, recorded as such so that ``dpst fast --look`` finds each content's alike (torch is
imported only when the segmenter's PyTorch weights are on disk; what is not used is said in
one line). The second
stylises CONTENT in one pass with a global look (no masks) and fits the ``.cube`` that takes
the content's colours to the result's (:mod:`dpst.serve.runtime.look_export`), reporting how close
the LUT comes; ``--strength`` sets how much of the look that result (so the LUT) carries.
Torch-free.

Each form has its parser (``dpst look --help``, ``dpst look export --help``):
:func:`dpst.cli.main` sends a first argument ``export`` to the second (a style photo named
``export`` is passed as ``./export``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dpst.commands import fast, options
from dpst.commands.outputs import (
    check_no_clash,
    check_not_a_folder,
    check_writable_folder,
    write_errors,
)
from dpst.commands.resolve import one_pass_config
from dpst.errors import InputError
from dpst.imageio import read_image
from dpst.labels.finder import choose_finder, stderr_say
from dpst.labels.mask_files import read_mask
from dpst.serve.runtime.look_export import export_lut
from dpst.serve.runtime.looks import (
    LABEL_SOURCES,
    LABELS_FROM_SEGMENTER,
    LOOK_SUFFIX,
    describe_regions,
    encode_look,
    read_look,
    style_groups,
    write_look,
)
from dpst.serve.runtime.lut_files import CUBE_SUFFIX
from dpst.serve.runtime.lut_fit import LutFitConfig
from dpst.serve.runtime.pipeline import run_look, run_pair

EXPORT = "export"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``dpst look STYLE -o LOOK.dpst`` (the export form's: :func:`add_export_arguments`)."""
    p.epilog = "A result as a 3D LUT instead: dpst look export --help."
    p.add_argument("style", metavar="STYLE", help="the photo whose look to save")
    p.add_argument(
        "-o", "--output", required=True, metavar="LOOK.dpst", help="the look file to write"
    )
    fast.add_model(p)
    p.add_argument(
        "--style-mask", metavar="MASK", help="colour-coded mask or integer label map of STYLE"
    )
    p.add_argument(
        "--mask-kind",
        choices=("auto", "colour", "labels"),
        default="auto",
        help="how to read the mask file (default: decide from the file)",
    )
    # The export form's flags, hidden: given here they cost one line saying whose they are,
    # not argparse's usage block.
    for flag, kind in (
        ("--look", str),
        ("--lut-size", int),
        ("--hald", str),
        ("--strength", float),
    ):
        p.add_argument(flag, type=kind, help=argparse.SUPPRESS)
    fast.add_threads(p)
    options.add_automatic_masks(
        p, options.MASKS_DEFAULT, "auto (default): the style's regions are the segmenter's "
        "groups (sky, tree, building, ...) from its ONNX file (fetched once when online) or "
        "its weights on this machine, else the weight-free regions (a sky or a backdrop, and "
        "rest), else one region, said in one line; none: one region",
        "regions of a look made without --style-mask",
        device=True,
    )  # fmt: skip


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """``dpst look export CONTENT (STYLE | --look LOOK.dpst) -o LUT.cube``."""
    p.add_argument("content", metavar="CONTENT", help="the photo the LUT is fitted on")
    p.add_argument(
        "style", metavar="STYLE", nargs="?", help="the photo whose look to take (or --look)"
    )
    p.add_argument("-o", "--output", required=True, metavar="LUT.cube", help="the 3D LUT to write")
    p.add_argument("--look", metavar="LOOK.dpst", help="a look from dpst look, instead of STYLE")
    fast.add_model(p)
    fast.add_strength(p)
    p.add_argument(
        "--lut-size", type=int, default=None, metavar="N", help="nodes per side (default 33)"
    )
    p.add_argument(
        "--hald", metavar="HALD.png", help="also write the LUT as a Hald CLUT image (level 8)"
    )
    # Hidden: a LUT is global; given, it costs one line saying so.
    p.add_argument("--style-mask", help=argparse.SUPPRESS)
    fast.add_threads(p)


def _check_outputs(outputs: dict, inputs: dict) -> list:
    """Each output (suffix -> path) writable, of its suffix, and replacing no input."""
    paths = []
    for suffix, given in outputs.items():
        check_not_a_folder(given)
        path = Path(given)
        if path.suffix.lower() != suffix:
            raise InputError(f"{given}: this output is written as {suffix}")
        check_writable_folder(path.parent)
        paths.append(path)
    check_no_clash(paths, inputs)
    if len(paths) == 2:
        check_no_clash(paths[:1], {"other output": paths[1]})
    return paths


def run(args: argparse.Namespace) -> int:
    from dpst.commands.signals import interruptible

    extra = [f for f, v in (("--look", args.look), ("--hald", args.hald), ("--lut-size",
             args.lut_size), ("--strength", args.strength)) if v is not None]  # fmt: skip
    if extra:
        raise InputError(f"{', '.join(extra)}: only for dpst look {EXPORT}")
    args.threads = one_pass_config(args).threads
    return interruptible("look", lambda: _make(args), "nothing written, no partial file left")


def run_export(args: argparse.Namespace) -> int:
    from dpst.commands.signals import interruptible

    args.threads = one_pass_config(args).threads
    kept = "nothing written, no partial file left"
    return interruptible(f"look {EXPORT}", lambda: _export(args), kept)


def _make(args: argparse.Namespace) -> int:

    style_path = args.style
    inputs = {"style photo": style_path, "--style-mask": args.style_mask, "--model": args.model}
    (out,) = _check_outputs({LOOK_SUFFIX: args.output}, inputs)
    style = read_image(style_path)
    labels = groups = source = None
    if args.style_mask is not None:
        labels = read_mask(args.style_mask, style.shape[:2], args.mask_kind)
    # The model first: a bad one costs one line, before any note about masks.
    stylizer = fast.open_stylizer(args)
    if labels is None:
        labels, groups, source = _segmented(args, style, stylizer.max_labels)
    look = encode_look(stylizer, style, labels, Path(style_path).name, groups,
                       source or LABELS_FROM_SEGMENTER)  # fmt: skip
    with write_errors(out):
        write_look(out, look)
    print(f"wrote {out} ({Path(style_path).name}, {describe_regions(look)}, model "
          f"{look.model_id})")  # fmt: skip
    return 0


def _segmented(args: argparse.Namespace, style, max_labels: int):
    """``(labels, names, label source)`` of the style's regions found alone in ``--masks
    auto``'s order (:mod:`dpst.labels.finder`: the segmenter's groups, else the weight-free
    regions), or ``(None, None, None)``: one region (asked for, or none found: said in one
    line)."""
    auto = options.auto_masks(args)
    if auto is None:
        return None, None, None
    say = stderr_say("look")
    finder = choose_finder("look", auto, say)
    found = finder.photo(style, "style")
    if found.labels is None:
        if found.why is not None:
            say(finder.one_region_note(found.why))
        return None, None, None
    names = finder.names_of(found)  # the weight-free regions: rest and the style's role
    labels, note = style_groups(found.labels, names, max_labels)
    if note:
        print(f"dpst look: {note}")
    return labels, names, LABEL_SOURCES[finder.source]


def _export(args: argparse.Namespace) -> int:

    strength = one_pass_config(args).strength
    if (args.style is not None) == (args.look is not None):
        raise InputError(f"dpst look {EXPORT} takes CONTENT and either STYLE or --look LOOK.dpst")
    if args.style_mask is not None:
        raise InputError(f"--style-mask: a LUT is global; dpst look {EXPORT} uses no masks")
    config = LutFitConfig() if args.lut_size is None else LutFitConfig(size=args.lut_size)
    config.validate()
    content_path, style_path = args.content, args.style
    inputs = {
        "content photo": content_path,
        "style photo": style_path,
        "--look": args.look,
        "--model": args.model,
    }
    outputs = {CUBE_SUFFIX: args.output}
    if args.hald is not None:
        outputs[".png"] = args.hald
    paths = _check_outputs(outputs, inputs)
    look = read_look(args.look) if args.look is not None else None
    content = read_image(content_path)
    style = read_image(style_path) if style_path is not None else None
    stylizer = fast.open_stylizer(args)
    # One region: a LUT is one global mapping. Float out: the LUT is fitted to the result
    # before rounding.
    if look is not None:
        output = run_look(stylizer, look, content, None, args.look, strength, dtype=np.float32)
        title = f"dpst look {Path(args.look).stem}"
    else:
        output = run_pair(stylizer, content, style, None, strength, dtype=np.float32)
        title = f"dpst look {Path(style_path).stem}"
    hald = paths[1] if len(paths) == 2 else None
    with write_errors(*paths):  # both files or neither
        result = export_lut(content, output.image, paths[0], config, hald_path=hald, title=title)
    also = f" and {hald}" if hald else ""
    print(
        f"wrote {paths[0]}{also} ({config.size}-node LUT); fit error: mean CIEDE2000 "
        f"{result.mean_de2000:.2f} (95th percentile {result.p95_de2000:.2f}) between the "
        f"one-pass result and the LUT applied to the content"
    )
    return 0
