"""``dpst data``: build, check and sample pair manifests (thin layer over ``dpst.data``)."""

from __future__ import annotations

import argparse
import sys

from dpst.commands import options
from dpst.commands.exit_codes import EXIT_PROBLEMS


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    pairs = sub.add_parser(
        "pairs",
        help="pair the photos of a folder into a manifest",
        description="Pair the photos of a folder into a manifest (JSON Lines).",
    )
    pairs.add_argument("photo_dir", metavar="PHOTOS", help="folder of photos")
    pairs.add_argument(
        "-o", "--output", required=True, metavar="MANIFEST", help="manifest to write (.jsonl)"
    )
    pairs.add_argument(
        "--per-content", type=int, default=1, metavar="N",
        help="style photos drawn for every content photo (1)",
    )  # fmt: skip
    pairs.add_argument(
        "--mode",
        choices=("auto", "random", "semantic"),
        default="auto",
        help="auto: semantic when masks exist, else random",
    )
    pairs.add_argument(
        "--min-overlap",
        type=float,
        default=0.5,
        metavar="FRACTION",
        help="semantic pairing: least label-histogram overlap (0.5)",
    )
    pairs.add_argument("--seed", type=int, default=0, help="random seed of the drawing (0)")
    pairs.add_argument(
        "--masks", metavar="DIR", help="masks named like the photos (colour masks or label maps)"
    )
    options.add_segmenter(
        pairs,
        device=False,
        default=None,
        what="compute masks with this segmenter, cached beside the manifest (default: none "
        "computed; --masks DIR takes precedence)",
    )
    pairs.add_argument("--recursive", action="store_true", help="look into sub-folders too")
    pairs.set_defaults(_data_run=run_pairs)

    check = sub.add_parser(
        "check",
        help="report missing, unreadable or mismatched entries",
        description="Check a manifest: every line and every file it names.",
    )
    check.add_argument("manifest", metavar="MANIFEST", help="manifest (.jsonl)")
    check.add_argument(
        "--no-files", dest="files", action="store_false", help="check the lines only, not the files"
    )
    check.set_defaults(_data_run=run_check)

    samples = sub.add_parser(
        "samples",
        help="a tiny pair set from scikit-image's sample photos",
        description="Write scikit-image's sample photos, two-label masks "
        "and a manifest into a folder, for smoke runs.",
    )
    samples.add_argument("out_dir", metavar="DIR", help="folder to write")
    samples.add_argument(
        "--size", type=int, default=256, metavar="PX", help="long side in pixels (256)"
    )
    samples.add_argument(
        "--no-masks", dest="masks", action="store_false", help="photos and manifest only"
    )
    samples.add_argument(
        "--per-content", type=int, default=1, metavar="N",
        help="style photos paired with every content photo (1)",
    )  # fmt: skip
    samples.add_argument("--seed", type=int, default=0, help="random seed of the pairing (0)")
    samples.set_defaults(_data_run=run_samples)


def run(args: argparse.Namespace) -> int:
    return args._data_run(args)


def _print_problems(problems, prefix: str = "") -> None:
    for problem in problems:
        print(f"{prefix}{problem}", file=sys.stderr)


def run_pairs(args: argparse.Namespace) -> int:
    from dpst.data.pairs import PairingConfig, build_pairs

    segmenter = None
    if args.segmenter and not args.masks:
        from dpst.models.segmenter import build_segmenter

        segmenter = build_segmenter(options.segmenter_config(args))
    config = PairingConfig(args.per_content, args.mode, args.min_overlap, args.seed)
    result = build_pairs(
        args.photo_dir,
        args.output,
        config,
        masks_dir=args.masks,
        segmenter=segmenter,
        recursive=args.recursive,
    )
    _print_problems(result.problems)
    r = result.report
    print(
        f"wrote {args.output}: {r['pairs']} pairs of {r['photos']} photos "
        f"({r['mode']} pairing, masks: {r['masks']}); {len(result.problems)} photos skipped"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    from dpst.data.manifest import check_manifest

    entries, problems = check_manifest(args.manifest, files=args.files)
    _print_problems(problems, prefix=f"{args.manifest}: ")
    bad_lines = len({p.line for p in problems})
    print(f"{args.manifest}: {len(entries)} entries ok, {bad_lines} lines with problems")
    return EXIT_PROBLEMS if problems else 0


def run_samples(args: argparse.Namespace) -> int:
    from dpst.data.samples import write_sample_set

    result = write_sample_set(args.out_dir, args.size, args.masks, args.per_content, args.seed)
    print(f"wrote {len(result.entries)} pairs to {args.out_dir}/manifest.jsonl")
    return 0
