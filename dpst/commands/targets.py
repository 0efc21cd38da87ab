"""``dpst targets``: the optimiser's output for every pair of a manifest.

    dpst targets pairs.jsonl --out targets/ --size 512 --iters 500
    torchrun --nproc-per-node 4 -m dpst targets pairs.jsonl --out targets/

A thin layer over :func:`dpst.train.targets.run_targets`; the optimiser's settings are
``dpst stylize``'s. Each config's targets go to their own folder, ``OUT/<config hash>/``, so a
run with other settings writes beside the earlier targets; ``OUT/manifest.jsonl`` is the last
run's. Exits 1 (:data:`~dpst.commands.exit_codes.EXIT_PROBLEMS`) when any pair of the
manifest is left without a target because it failed or its line is invalid.
"""

from __future__ import annotations

import argparse
import sys

from dpst.commands import options
from dpst.commands.exit_codes import EXIT_OK, EXIT_PROBLEMS

# Printed in full up to this many; the rest are in summary.json.
SHOWN_PROBLEMS = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.commands.stylize import add_optimiser_options

    p.add_argument(
        "manifest", metavar="MANIFEST", help="pairs manifest (.jsonl, see data/README.md)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--no-retry-failed",
        dest="retry_failed",
        action="store_false",
        help="leave pairs that failed in an earlier run alone",
    )
    options.add_quiet(p)
    add_optimiser_options(p.add_argument_group("optimiser options (as for dpst stylize)"))


def run(args: argparse.Namespace) -> int:
    from dpst.commands.signals import termination_as_interrupt
    from dpst.commands.stylize import optimiser_configs
    from dpst.train.targets import run_targets

    config, backbone = optimiser_configs(args)
    # A timeout, a kill or a closed terminal stop the run as Ctrl-C does: the pair in
    # progress is dropped, the summary written, and the next run resumes.
    with termination_as_interrupt() as received:
        try:
            summary = run_targets(
                args.manifest,
                args.out,
                config,
                backbone,
                retry_failed=args.retry_failed,
                progress=not args.quiet,
            )
        except KeyboardInterrupt:
            if received.signum is None:
                raise
            print(f"dpst targets: interrupted ({received.name()})", file=sys.stderr)
            return received.exit_code()
    if summary is None:  # not rank 0
        return 0
    for problem in summary["invalid_lines"][:SHOWN_PROBLEMS]:
        where = f"line {problem['line']}" + (f" ({problem['id']})" if problem["id"] else "")
        print(f"skipped {where}: {problem['error']}", file=sys.stderr)
    for failure in summary["failures"][:SHOWN_PROBLEMS]:
        print(
            f"failed {failure['id']} (line {failure['line']}): {failure['error']}", file=sys.stderr
        )
    rate = f" ({summary['pairs_per_hour']:.1f} pairs/hour)" if summary["done"] else ""
    left = f", {summary['left_failed']} failed before" if summary["left_failed"] else ""
    print(
        f"{summary['done']} done, {summary['skipped']} skipped (already done), "
        f"{summary['failed']} failed{left}, {summary['invalid']} invalid lines, "
        f"in {summary['seconds']:.1f} s on {summary['world_size']} process(es){rate}; "
        f"targets in {summary['folder']}, see its summary.json"
    )
    if summary["interrupted"]:
        return received.exit_code()
    failed = summary["failed"] + summary["left_failed"]
    if failed or summary["invalid"]:
        print(
            f"dpst targets: finished with failures: {failed} pair(s) failed and "
            f"{summary['invalid']} manifest line(s) invalid, so without a target (listed above "
            f"and in {summary['folder']}/summary.json); the other pairs are done",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    return EXIT_OK
