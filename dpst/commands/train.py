"""``dpst train``: train the generator on a manifest (thin layer over :func:`loop.train`).

    dpst train targets/manifest.jsonl --run-dir runs/g1 --steps 20000
    torchrun --nproc-per-node 4 -m dpst train targets/manifest.jsonl --run-dir runs/g1

Run the same command again to resume from ``RUN/last.pt`` (``RUN/prev.pt`` when that one is
damaged). Settings: defaults, then the run's checkpoint's when it resumes, then ``--config
FILE`` (JSON, e.g. a run's ``config.json``), then these flags. A resume that changes a setting
is refused (one line naming it) unless ``--reconfigure`` is given; some settings may change
freely (:data:`dpst.train.resume_settings.FREE_ON_RESUME`).
"""

from __future__ import annotations

import argparse

from dpst.commands import options
from dpst.commands.exit_codes import EXIT_INTERRUPTED

# flag dest -> TrainConfig field
FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "schedule": "schedule",
    "warmup_steps": "warmup_steps",
    "clip_norm": "clip_norm",
    "distill_weight": "distill_weight",
    "log_ratio": "log_ratio",
    "grid_smoothness": "grid_smoothness",
    "range_penalty": "range_penalty",
    "init_from": "init_from",
    "val_pairs": "val_pairs",
    "val_manifest": "val_manifest",
    "val_every": "val_every",
    "val_size": "val_size",
    "checkpoint_every": "checkpoint_every",
    "log_every": "log_every",
    "image_every": "image_every",
    "seed": "seed",
    "device": "device",
    "workers": "num_workers",
    "threads": "threads",
    "check_files": "check_files",
    "amp": "amp",
    "min_region": "labels.min_fraction",
}


def add_step_options(p: argparse.ArgumentParser, defaults: dict[str, str]) -> None:
    """Flags every training loop takes; ``defaults`` gives each help's default in words."""
    count = {"type": int, "metavar": "N"}
    p.add_argument("--steps", help=f"optimiser steps in all ({defaults['steps']})", **count)
    p.add_argument("--batch-size", help=f"pairs per step ({defaults['batch_size']})", **count)
    p.add_argument("--lr", type=float, help=f"peak learning rate ({defaults['lr']})")
    p.add_argument("--warmup-steps", help=f"linear warm-up steps ({defaults['warmup']})", **count)
    p.add_argument("--val-pairs", help=f"validation pairs ({defaults['val_pairs']})", **count)
    p.add_argument("--val-every", help="steps between validations", **count)
    p.add_argument("--checkpoint-every", help="steps between checkpoints", **count)
    p.add_argument("--log-every", help="steps between logged scalars (10)", **count)
    p.add_argument("--image-every", help="steps between image grids", **count)
    p.add_argument("--seed", type=int, help="random seed of the run (0)")
    options.add_device(p)
    p.add_argument("--workers", help="DataLoader worker processes", **count)
    p.add_argument("--threads", help="CPU threads per process (PyTorch's default)", **count)
    p.add_argument("--stop-at", help="stop (with a checkpoint) after step N", **count)
    p.add_argument("--reconfigure", action="store_true",
                   help="resume with changed settings (refused otherwise); recorded in "
                        "RUN/config_history.jsonl")  # fmt: skip
    options.add_quiet(p, "no progress lines")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "manifest", metavar="MANIFEST",
        help="pairs manifest (.jsonl); pairs with 'target' are distilled",
    )  # fmt: skip
    p.add_argument("--run-dir", required=True, metavar="DIR", help="checkpoints, logs, config")
    options.add_config(p, "TrainConfig")
    add_step_options(
        p, {"steps": "20000", "batch_size": "4", "lr": "2e-4", "warmup": "500", "val_pairs": "0"}
    )
    p.add_argument("--schedule", choices=("constant", "cosine", "linear"), help="(cosine)")
    p.add_argument(
        "--clip-norm", type=float, metavar="NORM", help="max gradient norm, 0 = off (1.0)"
    )
    p.add_argument(
        "--distill-weight", type=float, metavar="WEIGHT", help="L1-to-target weight (10)"
    )
    p.add_argument("--log-ratio", action="store_true", default=None,
                   help="train on the mean log of J(G)/J(target), not the mean ratio")  # fmt: skip
    p.add_argument(
        "--grid-smoothness", type=float, metavar="WEIGHT", help="grid roughness weight (0)"
    )
    p.add_argument("--range-penalty", type=float, metavar="WEIGHT",
                   help="weight of the output's overshoot of [0, 1] (1e5)")  # fmt: skip
    p.add_argument("--image-size", type=int, metavar="PX", help="training crop side in px (256)")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start a new run from this generator's weights")  # fmt: skip
    p.add_argument("--val-manifest", metavar="MANIFEST", help="validate on this manifest instead")
    p.add_argument(
        "--val-size", type=int, metavar="PX", help="long side of validation images (256)"
    )
    options.add_min_region(p)
    options.add_backbone(p)
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="no mixed precision on CUDA")  # fmt: skip
    p.add_argument("--no-check-files", dest="check_files", action="store_false", default=None,
                   help="skip decoding every file before training")  # fmt: skip


def build_config(args: argparse.Namespace):
    """Defaults, then the run's checkpoint's settings, then ``--config``, then flags: the
    resolved TrainConfig."""
    from dpst.commands.resolve import backbone_values, resolve
    from dpst.train.config import TrainConfig
    from dpst.train.resume_settings import recorded_config
    from dpst.train.state import run_checkpoints

    given: dict = {"backbone": backbone_values(args)}
    if args.image_size is not None:
        given["augment"] = {"size": [args.image_size, args.image_size]}
    recorded = recorded_config(run_checkpoints(args.run_dir), lambda state: state.config)
    return resolve(TrainConfig(), args, FLAGS, given=given, below_file=(recorded or {},))


def run(args: argparse.Namespace) -> int:
    from dpst.train.loop import train

    summary = train(
        build_config(args), args.manifest, args.run_dir, stop_at=args.stop_at,
        progress=not args.quiet, reconfigure=args.reconfigure,
    )  # fmt: skip
    if summary is None:  # not rank 0
        return 0
    if summary["backbone"].get("random"):
        print("backbone: random (seeded stand-in for VGG-19, not the method)")
    state = "finished" if summary["finished"] else "stopped"
    print(
        f"{state} at step {summary['steps']} (started at {summary['resumed_from_step']}) in "
        f"{summary['seconds']:.1f} s; checkpoint {summary['checkpoint']}"
    )
    return EXIT_INTERRUPTED if summary["interrupted"] else 0
