"""``dpst fast CONTENT STYLE -o OUT``: one pass of the exported generator, without torch.

A thin layer over :class:`dpst.serve.runtime.stylizer.FastStylizer`. Masks are read as ``dpst
stylize`` reads them (:mod:`dpst.labels.mask_files`, torch-free): colour masks in the
paper's palette or label maps, prepared as the demo prepares them
(:mod:`dpst.labels.one_pass`: the paper's label rule, then labels 0..n-1). No torch is
imported on this path; ``--masks auto`` (the default, as in ``dpst stylize``: find regions
when no mask files are given) follows :mod:`dpst.labels.finder`, as every front end does: the
segmenter's ONNX file on ONNX Runtime, fetched once when online
(:mod:`dpst.labels.automatic_onnx`); only when that file is absent and the segmenter's
PyTorch weights are on disk is torch imported; with neither it says so in one line and uses
the weight-free regions (sky and rest), else one region, torch-free. So is a look whose
regions are the segmenter's groups or the weight-free ones (``dpst look`` with ``--masks
auto``): each content's are found alike, unless ``--content-mask`` names its regions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dpst.commands import options
from dpst.commands.exit_codes import EXIT_PROBLEMS
from dpst.commands.outputs import (
    check_image_output,
    check_no_clash,
    check_output_dir,
    write_image_or_rescue,
)
from dpst.commands.resolve import one_pass_config
from dpst.commands.signals import interruptible
from dpst.constants import DEFAULT_STRENGTH
from dpst.errors import InputError
from dpst.hashing import file_sha256
from dpst.imageio import Photo, read_image, read_photo
from dpst.labels.finder import (
    AutoMasks,
    choose_finder,
    finder_of_source,
    pair_finder,
    segmenter_finder,
    stderr_say,
)
from dpst.labels.mask_files import read_mask
from dpst.labels.regions import (
    FROM_MASK_FILES,
    FROM_SEGMENTER,
    FROM_WEIGHT_FREE,
    Regions,
    one_region,
)
from dpst.serve.runtime.batch import (
    content_files,
    is_many,
    output_paths,
    run_folder,
)
from dpst.serve.runtime.looks import check_model, look_regions, read_look
from dpst.serve.runtime.pipeline import run_look, run_pair

# What a folder's record says of a look's masks, by the source of each photo's regions.
LOOK_RECORDS = {FROM_SEGMENTER: "look, segmented", FROM_WEIGHT_FREE: "look, weight-free"}
THREADS_HELP = "ONNX Runtime intra-op threads, 1 to twice the cores"
STRENGTH_HELP = (
    "how much of the look to apply: 0 = the content unchanged, 1 = the model's full transfer "
    "(default), up to 2 to exaggerate"
)


# Where the one-pass model comes from when --model is not given (default_model_path).
MODEL_DEFAULT = (
    "default: $DPST_MODEL, else ~/.cache/dpst/model.onnx if present, else the model bundled "
    "with dpst"
)


def add_model(
    p: argparse.ArgumentParser, what: str = "the stylizer .onnx from dpst export"
) -> None:
    p.add_argument("--model", metavar="MODEL.onnx", help=f"{what} ({MODEL_DEFAULT})")


def add_threads(p: argparse.ArgumentParser, what: str = THREADS_HELP) -> None:
    """``--threads N`` of the one-pass commands (checked by
    :func:`~dpst.commands.resolve.one_pass_config`); the help names the default as a number,
    this machine's cores, which is what a reader wants to compare with."""
    cores = os.cpu_count() or 1
    p.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help=f"{what} (default: the cores, {cores} here)",
    )  # fmt: skip


def add_strength(
    p: argparse.ArgumentParser, default: float | None = DEFAULT_STRENGTH, prefix: str = ""
) -> None:
    """``--strength`` (checked by :func:`~dpst.commands.resolve.one_pass_config` in ``run``:
    out of range is one line, not argparse's usage block); ``prefix`` starts its help."""
    p.add_argument(
        "--strength", type=float, default=default, metavar="S", help=prefix + STRENGTH_HELP
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "content", metavar="CONTENT",
        help="the photo to restyle; or a folder or a quoted glob of photos (with --out-dir)",
    )  # fmt: skip
    p.add_argument(
        "style", metavar="STYLE", nargs="?", help="the photo whose look to take (or --look)"
    )
    p.add_argument(
        "--look", metavar="LOOK.dpst", help="a look from dpst look STYLE, instead of STYLE"
    )
    options.add_output(p, "output image (one photo)", required=False)
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        help="with a folder or glob of photos: write each result here under its photo's name "
        "(a rerun skips those done)",
    )
    add_model(p)
    add_strength(p)
    p.add_argument(
        "--no-post-filter", dest="post_filter", action="store_false",
        help="leave out the paper's smoothing (its fast mode), which otherwise ends the pass: "
        "the model's result as it is, a little sooner",
    )  # fmt: skip
    options.add_mask_files(p, kinds=True)
    add_threads(p)
    options.add_automatic_masks(
        p, options.MASKS_DEFAULT, options.MASKS_HELP,
        "masks when no mask files are given", device=True,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    kept = "the results written so far are whole and kept; no partial file is left"
    return interruptible("fast", lambda: _run(args), kept)


def _run(args: argparse.Namespace) -> int:
    # The resolved values stand in for the flags: every helper below reads one value.
    config = one_pass_config(args)
    args.strength, args.threads = config.strength, config.threads
    if args.look is not None and args.style is not None:
        raise InputError("give STYLE or --look, not both")
    if args.look is None and args.style is None:
        raise InputError("give STYLE, or --look LOOK.dpst (from dpst look STYLE)")
    if args.look is None:
        options.mask_files_given(args)  # both or neither (a look holds the style's)
    elif args.style_mask is not None:
        raise InputError("with --look the style's masks are in the look: give --content-mask only")
    if is_many(args.content):
        if args.out_dir is None or args.output is not None:
            raise InputError(f"{args.content} names several photos: give --out-dir DIR, not -o")
        return _run_folder(args)
    if args.output is None or args.out_dir is not None:
        raise InputError("give -o OUTPUT for one photo (--out-dir is for a folder or a glob)")
    return _run_one(args)


def open_stylizer(args: argparse.Namespace):
    """The FastStylizer of ``--model`` (else the default model; ``--threads``), or a one-line
    RuntimeModelError: for dpst fast, look and video."""
    from dpst.serve.runtime.stylizer import (
        DEFAULT_MODEL_PATH,
        MODEL_ENV,
        FastStylizer,
        RuntimeModelError,
        default_model_path,
    )

    model_path = args.model or default_model_path()
    if model_path is None:
        raise RuntimeModelError(
            f"no fast model: pass --model, set {MODEL_ENV}, or export one to "
            f"{DEFAULT_MODEL_PATH} (dpst export CHECKPOINT -o {DEFAULT_MODEL_PATH})"
        )
    from dpst.serve.runtime.post_filter import PostFilter

    post_filter = PostFilter() if getattr(args, "post_filter", True) else None
    return FastStylizer(model_path, threads=args.threads, post_filter=post_filter)


def _region_finder(args: argparse.Namespace, style):
    """``content pixels -> Regions`` as asked: the mask files, else ``--masks auto``'s order
    (:mod:`dpst.labels.finder`: the segmenter, loaded once, else the weight-free regions,
    else one region), the style looked at once; each photo's note is one line on stderr."""
    if options.mask_files_given(args):
        style_labels = read_mask(args.style_mask, style.shape[:2], args.mask_kind)

        def from_files(pixels):
            content_labels = read_mask(args.content_mask, pixels.shape[:2], args.mask_kind)
            return Regions(content_labels, style_labels, FROM_MASK_FILES)

        return from_files
    auto = options.auto_masks(args)
    if auto is None:
        return lambda pixels: one_region()
    say = stderr_say("fast")
    find = pair_finder(choose_finder("fast", auto, say), style)

    def found(pixels):
        regions, note = find(pixels)
        if note:
            say(note)
        return regions

    return found


def _stylize_photo(args, stylizer, style):
    """8-bit content pixels -> the one pass's result (8-bit) and report, masks read,
    segmented or none as asked."""
    find_regions = _region_finder(args, style)
    return lambda pixels: run_pair(stylizer, pixels, style, find_regions(pixels), args.strength)


def look_content_finder(command: str, look, name: str, auto: AutoMasks | None):
    """The finder that labels each content in a look's regions (the segmenter for a look of
    its groups, the weight-free finder for a look of weight-free regions) and the groups'
    relation, or ``(None, None)``: the look's regions come from a mask file, one region is
    asked for, or no segmenter is here (said once, not once per photo). For dpst fast
    --look; the demo asks :func:`~dpst.labels.finder.finder_of_source` alike."""
    if auto is None:
        return None, None
    source, relation = look_regions(look, name)  # before the segmenter loads: one line
    finder = finder_of_source(source, auto, lambda: segmenter_finder(command, auto))
    return (None, None) if finder is None else (finder, relation)


def _stylize_with_look(args, stylizer, look):
    """8-bit content pixels -> 8-bit result in a saved look (the look holds the style's
    labels; ``--content-mask`` maps the content's onto them, or the look's finder finds them
    when the look's are the segmenter's or the weight-free ones), and whether contents are
    the source of those it finds (None: none found per photo)."""
    check_model(look, stylizer, args.look)  # before any photo: one line, not one per photo
    finder = relation = None
    if args.content_mask is None:
        finder, relation = look_content_finder("fast", look, args.look, options.auto_masks(args))
    say = stderr_say("fast")

    def stylize(pixels):
        labels = names = None
        if args.content_mask is not None:
            labels = read_mask(args.content_mask, pixels.shape[:2], args.mask_kind)
        elif finder is not None:
            found = finder.photo(pixels, "content")
            labels = found.labels
            if labels is None:
                say(finder.one_region_note(found.why or "nothing found"))
            else:  # the weight-free pair is named by both photos' roles, as dpst fast's
                names = finder.names_with_look(found, look.label_names or ())
        return run_look(stylizer, look, pixels, labels, args.look, args.strength, relation,
                        names=names)  # fmt: skip

    return stylize, None if finder is None else finder.source


def _stylize(args, stylizer, look):
    """The per-photo function of a look file, or of the style photo (read here), and what
    its folder's record says of masks."""
    if look is not None:
        stylize, source = _stylize_with_look(args, stylizer, look)
        # A look that finds each photo's regions gives other results than one region:
        # recorded, so that a rerun with the segmenter gained or lost is refused, not mixed in.
        return stylize, LOOK_RECORDS.get(source, "look")
    return _stylize_photo(args, stylizer, read_image(args.style)), args.masks


def _with_regions(stylize):
    """A folder's per-photo function: the pixels, and the regions used (names, source), which
    the folder's record keeps per photo."""

    def run(pixels):
        result = stylize(pixels)
        report = result.report
        return result.image, {
            "regions": report["regions"],
            "region_source": report["region_source"],
        }

    return run


def _read_look(args):
    """The look file, read before the model loads (a damaged one costs one line), or None."""
    return read_look(args.look) if args.look is not None else None


def _run_one(args: argparse.Namespace) -> int:
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL

    start = time.perf_counter()
    inputs = {
        "content photo": args.content,
        "style photo": args.style,
        "--look": args.look,
        "--content-mask": args.content_mask,
        "--style-mask": args.style_mask,
        "--model": args.model,
    }
    out = check_image_output(args.output, inputs)
    look = _read_look(args)
    # 8-bit content and result: a quarter of the memory of float at 50 megapixels.
    content = read_photo(args.content)
    # The model first: a bad one costs one line, before any note about masks.
    stylizer = open_stylizer(args)
    stylize, _ = _stylize(args, stylizer, look)
    loaded = time.perf_counter()
    result, report = stylize(content.pixels)
    done = time.perf_counter()
    write_image_or_rescue(out, Photo(result, content.icc_profile, content.exif))
    height, width = result.shape[:2]
    model_path = stylizer.model_path
    which = "the bundled model" if model_path == BUNDLED_MODEL else str(model_path)
    print(
        f"wrote {args.output} ({width}x{height}) in {time.perf_counter() - start:.2f} s "
        f"({which}: {done - loaded:.2f} s on {stylizer.provider})"
    )
    if report["regions"]:
        print(f"regions ({report['region_source']}): {', '.join(report['regions'])}")
    return 0


def _run_folder(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.content_mask is not None or args.style_mask is not None:
        raise InputError("--content-mask and --style-mask are for one photo; a folder takes "
                         "--masks auto or none")  # fmt: skip
    start = time.perf_counter()
    photos = content_files(args.content)
    out_dir = Path(args.out_dir)
    check_output_dir(out_dir)
    outputs = output_paths(photos, out_dir)
    sources = {"style photo": args.style, "--look": args.look}
    check_no_clash(outputs, {**sources, **{str(p): p for p in photos}})
    look = _read_look(args)
    stylizer = open_stylizer(args)
    stylize, masks = _stylize(args, stylizer, look)
    settings = {
        "style_sha256": file_sha256(args.look if look is not None else args.style),
        "model_id": stylizer.metadata["model_id"],
        "masks": masks,
        "strength": args.strength,
        "post_filter": stylizer.post_filter is not None,
    }
    bar = tqdm(total=len(photos), unit="photo", disable=None, file=sys.stderr)

    def progress(photo, outcome):
        bar.update(1)
        if outcome == "failed":
            bar.write(f"dpst: failed {photo}")

    try:
        # Checked and recorded under the folder's lock, with the photos written.
        # A record written before --strength existed was made at the default strength, and
        # one written before the post-filter without it.
        defaults = {"strength": DEFAULT_STRENGTH, "post_filter": False}
        report = run_folder(photos, out_dir, _with_regions(stylize), progress, settings, defaults)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    print(
        f"{len(report.done)} written to {out_dir}, {len(report.skipped)} already there, "
        f"{len(report.failed)} failed, in {seconds:.1f} s"
    )
    for photo, reason in report.failed:  # reasons name their file, mostly
        print(f"  failed: {reason if str(photo) in reason else f'{photo}: {reason}'}",
              file=sys.stderr)  # fmt: skip
    return EXIT_PROBLEMS if report.failed else 0
