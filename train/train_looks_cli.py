"""``dpst train-looks``: train the one-pass generator on photos and looks, no pretrained network
(thin layer over :func:`look_training.train_looks`).

    dpst train-looks PHOTOS/ LOOKS/ --run-dir runs/looks

Run the same command again to resume. Settings: defaults (the bundled model's), then
``--config FILE`` (JSON, e.g. a run's ``config.json``), then these flags.
"""

from __future__ import annotations

import argparse

EXIT_INTERRUPTED = 130
# flag dest -> LookTrainConfig field (top level)
_FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "warmup_steps": "warmup_steps",
    "seed": "seed",
    "threads": "threads",
    "device": "device",
    "workers": "num_workers",
    "val_pairs": "val_pairs",
    "val_every": "val_every",
    "checkpoint_every": "checkpoint_every",
    "log_every": "log_every",
    "image_every": "image_every",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", help="folder of photographs (unreadable files are skipped, listed)")
    p.add_argument("looks", help="folder of 3D LUTs: .cube files and Hald CLUT images")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="checkpoints, logs, config")
    p.add_argument("--config", help="JSON LookTrainConfig (or a run's config.json) to start from")
    p.add_argument("--steps", type=int, help="optimiser steps in all (2000)")
    p.add_argument("--batch-size", type=int, help="pairs per step (8)")
    p.add_argument("--lr", type=float, help="peak learning rate (1e-3)")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps (100)")
    p.add_argument("--crop-size", type=int, help="training crop side in px (128)")
    p.add_argument("--val-pairs", type=int, help="validation pairs from held-out files (48)")
    p.add_argument("--val-every", type=int, help="steps between validations (250)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (100)")
    p.add_argument("--log-every", type=int, help="steps between logged scalars (10)")
    p.add_argument("--image-every", type=int, help="steps between image grids (250)")
    p.add_argument("--seed", type=int, help="(0)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, help="processes synthesising pairs (1)")
    p.add_argument("--threads", type=int, help="CPU threads (PyTorch's default)")
    p.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_config(args: argparse.Namespace):
    """Defaults, then ``--config``, then flags: the resolved LookTrainConfig."""
    from dpst.config import load_config_file, update_dataclass
    from dpst.train.look_training import LookTrainConfig

    config = LookTrainConfig()
    if args.config:
        config = update_dataclass(config, load_config_file(args.config))
    flags = {field: getattr(args, dest) for dest, field in _FLAGS.items()}
    config = update_dataclass(config, {k: v for k, v in flags.items() if v is not None})
    if args.crop_size is not None:
        config = update_dataclass(config, {"pairs": {"size": args.crop_size}})
    return config


def run(args: argparse.Namespace) -> int:
    from dpst.train.look_training import train_looks

    summary = train_looks(
        build_config(args), args.photos, args.looks, args.run_dir,
        stop_at=args.stop_at, progress=not args.quiet,
    )  # fmt: skip
    state = "finished" if summary["finished"] else "stopped"
    print(f"{state} at step {summary['steps']} in {summary['seconds']:.1f} s; "
          f"checkpoint {summary['checkpoint']}")  # fmt: skip
    if summary["skipped_files"]:
        print(f"{len(summary['skipped_files'])} file(s) skipped (listed in summary.json)")
    return EXIT_INTERRUPTED if summary["interrupted"] else 0
