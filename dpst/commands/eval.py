"""``dpst eval``: the generator against the optimiser on every pair of a manifest.

    dpst eval runs/g1/last.pt targets/manifest.jsonl --out runs/g1/eval
    dpst eval model.pt pairs.jsonl --backbone random --iters 200   # no targets: optimise here
    dpst eval runs/g1/last.pt targets/manifest.jsonl --held-out     # only the run's held-out pairs

Prints the per-pair table and the mean; writes ``eval.csv``, ``eval.json`` and ``eval.png``.
The backbone defaults to the one the checkpoint was trained with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpst.commands import options
from dpst.errors import InputError

# flag dest -> EvalConfig field(s); --min-region sets one policy for the generator's
# objective and for the optimiser run here.
FLAGS = {
    "size": "size",
    "device": "device",
    "repeats": "repeats",
    "min_region": ("labels.min_fraction", "optimiser.labels.min_fraction"),
    "iters": "optimiser.iters",
    "multiscale": "optimiser.multiscale",
    "postfilter": "optimiser.postfilter",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="generator checkpoint (.pt, from dpst train)"
    )
    p.add_argument(
        "manifest", metavar="MANIFEST",
        help="pairs manifest (.jsonl); 'target' = the optimiser's output",
    )  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="output folder (default: eval/ by the checkpoint)")
    options.add_config(p, "EvalConfig (size, weights, matting, backbone, ...)")
    p.add_argument("--size", type=int, metavar="PX", help="long side of the evaluated images (256)")
    options.add_backbone(p)
    options.add_min_region(p)
    options.add_device(p)
    p.add_argument("--repeats", type=int, metavar="N", help="timed generator runs per pair (3)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N pairs")
    p.add_argument(
        "--held-out",
        action="store_true",
        help="evaluate only the pairs the checkpoint's training run held out",
    )
    group = p.add_argument_group("the optimiser, for pairs without a target")
    group.add_argument("--iters", type=int, metavar="N", help="L-BFGS iterations per stage (1000)")
    group.add_argument("--multiscale", action="store_true", default=None)
    group.add_argument("--no-postfilter", dest="postfilter", action="store_false", default=None)


def build_config(args: argparse.Namespace, trained: dict | None):
    """Defaults, the checkpoint's training backbone, then ``--config``, then flags."""
    from dpst.commands.resolve import backbone_values, resolve
    from dpst.config import validated
    from dpst.train.evaluate import EvalConfig

    below = ()
    if trained and isinstance(trained.get("backbone"), dict):
        below = ({"backbone": trained["backbone"]},)
    given = {"backbone": backbone_values(args)}
    return validated(resolve(EvalConfig(), args, FLAGS, given=given, below_file=below))


def held_out_entries(entries: list, extra, checkpoint: str, manifest: str) -> list:
    """The manifest's entries that the training run recorded in ``checkpoint`` held out.

    Raises:
        InputError: the checkpoint records no held-out pairs, or none is in the manifest.
    """
    from dpst.imageio import warn

    ids = extra.get("validation_ids") if isinstance(extra, dict) else None
    if not ids:
        raise InputError(
            f"{checkpoint} records no held-out pairs (not a dpst train checkpoint, or trained "
            f"with --val-pairs 0); drop --held-out"
        )
    held = set(ids)
    kept = [e for e in entries if e.id in held]
    if not kept:
        raise InputError(f"{manifest}: none of the {len(held)} held-out pairs is in it")
    missing = sorted(held - {e.id for e in kept})
    if missing:
        warn(f"{len(missing)} held-out pair(s) not in {manifest}: {', '.join(missing[:5])}")
    return kept


def _entries(args: argparse.Namespace, extra) -> list:
    from dpst.data.manifest import read_manifest

    entries, problems = read_manifest(args.manifest)
    if problems:
        listed = "; ".join(str(p) for p in problems[:3])
        raise InputError(f"{args.manifest}: {len(problems)} bad line(s): {listed}")
    if args.held_out:
        entries = held_out_entries(entries, extra, args.checkpoint, args.manifest)
    if args.limit is not None:
        entries = entries[: max(0, args.limit)]
    return entries


def run(args: argparse.Namespace) -> int:

    import torch

    from dpst.models.checkpoint import load_checkpoint
    from dpst.optim_reference.vgg import load_backbone
    from dpst.train.eval_report import format_table, write_report
    from dpst.train.evaluate import config_dict, evaluate

    model, extra = load_checkpoint(args.checkpoint)
    trained = (extra or {}).get("config") if isinstance(extra, dict) else None
    config = build_config(args, trained)
    entries = _entries(args, extra)
    network = load_backbone(config.backbone, "cpu")
    out = Path(args.out) if args.out else Path(args.checkpoint).resolve().parent / "eval"

    def show(row):
        print(f"{row['id']}: J(G)/J(opt) {row['objective_ratio']:.3f}", file=sys.stderr)

    with torch.no_grad():
        rows, summary = evaluate(model, entries, config, network, progress=show)
    meta = {
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "manifest": str(Path(args.manifest).resolve()),
        "config": config_dict(config),
        "backbone": network[1],
        "model": model.config.to_dict(),
        "trained_steps": (extra or {}).get("step") if isinstance(extra, dict) else None,
    }
    paths = write_report(out, rows, summary, meta)
    if network[1].get("random"):
        print("backbone: random (seeded stand-in for VGG-19, not the method)")
    print(format_table(rows, summary))
    print(
        f"pairs within 1.5x of the optimiser's objective: {summary['pairs_within_1_5x']}"
        f"/{summary['pairs']}; photorealism energy not higher: "
        f"{summary['pairs_energy_not_higher']}/{summary['pairs']}"
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
