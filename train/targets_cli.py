"""``dpst targets``: the optimiser's output for every pair of a manifest (thin CLI layer).

dpst targets pairs.jsonl --out targets/ --size 512 --iters 500
torchrun --nproc-per-node 4 -m dpst targets pairs.jsonl --out targets/
"""

from __future__ import annotations

import argparse
import sys

EXIT_INTERRUPTED = 130
# Printed in full up to this many; the rest are in summary.json.
SHOWN_PROBLEMS = 20
# ``dpst stylize`` options that concern one output file, not the optimiser.
_NOT_OPTIMISER_OPTIONS = frozenset(
    {
        "content",
        "style",
        "-o",
        "--content-mask",
        "--style-mask",
        "--snapshot-every",
        "--tensorboard",
        "--quiet",
    }
)


class _OptimiserOptions:
    """Forwards ``add_argument`` to a parser, dropping the options in ``skip``.

    Lets ``dpst targets`` share ``dpst stylize``'s optimiser options (names, help, defaults
    and ``build_configs``) without copying them.
    """

    def __init__(self, parser: argparse.ArgumentParser, skip: frozenset[str]) -> None:
        self._parser, self._skip = parser, skip

    def add_argument(self, *names: str, **kwargs):
        if names and names[0] in self._skip:
            return None
        return self._parser.add_argument(*names, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._parser, name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.optim_reference import cli as stylize_cli

    p.add_argument("manifest", help="pairs manifest (.jsonl, see data/README.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--no-retry-failed",
        dest="retry_failed",
        action="store_false",
        help="leave pairs that failed in an earlier run alone",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    group = p.add_argument_group("optimiser options (as for dpst stylize)")
    stylize_cli.add_arguments(_OptimiserOptions(group, _NOT_OPTIMISER_OPTIONS))
    p.set_defaults(snapshot_every=None)  # read by build_configs


def run(args: argparse.Namespace) -> int:
    from dpst.errors import InputError
    from dpst.optim_reference.cli import build_configs
    from dpst.train.targets import run_targets

    config, backbone = build_configs(args)
    try:
        config.validate()
    except ValueError as err:
        raise InputError(str(err)) from None
    summary = run_targets(
        args.manifest,
        args.out,
        config,
        backbone,
        retry_failed=args.retry_failed,
        progress=not args.quiet,
    )
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
    return EXIT_INTERRUPTED if summary["interrupted"] else 0
