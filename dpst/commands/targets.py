"""``dpst targets``: the optimiser's output for every pair of a manifest.

    dpst targets pairs.jsonl --out targets/ --size 512 --iters 500
    torchrun --nproc-per-node 4 -m dpst targets pairs.jsonl --out targets/

A thin layer over :func:`dpst.train.targets.run_targets`; the optimiser's settings are
``dpst stylize``'s.
"""

from __future__ import annotations

import argparse
import sys

from dpst.commands import options

# Printed in full up to this many; the rest are in summary.json.
SHOWN_PROBLEMS = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.commands.stylize import add_optimiser_options

    p.add_argument("manifest", help="pairs manifest (.jsonl, see data/README.md)")
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
    print(
        f"{summary['done']} done, {summary['skipped']} skipped (already done), "
        f"{summary['failed']} failed, {summary['invalid']} invalid lines, "
        f"in {summary['seconds']:.1f} s on {summary['world_size']} process(es){rate}; "
        f"see {args.out}/summary.json"
    )
    return received.exit_code() if summary["interrupted"] else 0
