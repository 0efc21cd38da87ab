"""``dpst train``: train the generator on a manifest (thin layer over :func:`loop.train`).

    dpst train targets/manifest.jsonl --run-dir runs/g1 --steps 20000
    torchrun --nproc-per-node 4 -m dpst train targets/manifest.jsonl --run-dir runs/g1

Run the same command again to resume from ``RUN/last.pt``. Settings: defaults, then
``--config FILE`` (JSON, e.g. a run's ``config.json``), then these flags.
"""

from __future__ import annotations

import argparse

EXIT_INTERRUPTED = 130
# flag dest -> TrainConfig field (top level)
_FLAGS = {
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
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="pairs manifest (.jsonl); pairs with 'target' are distilled")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="checkpoints, logs, config")
    p.add_argument("--config", help="JSON TrainConfig (or a run's config.json) to start from")
    p.add_argument("--steps", type=int, help="optimiser steps in all (20000)")
    p.add_argument("--batch-size", type=int, help="pairs per step and rank (4)")
    p.add_argument("--lr", type=float, help="peak learning rate (2e-4)")
    p.add_argument("--schedule", choices=("constant", "cosine", "linear"), help="(cosine)")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps (500)")
    p.add_argument("--clip-norm", type=float, help="max gradient norm, 0 = off (1.0)")
    p.add_argument("--distill-weight", type=float, help="L1-to-target weight (10)")
    p.add_argument(
        "--log-ratio",
        action="store_true",
        default=None,
        help="train on the mean log of J(G)/J(target), not the mean ratio",
    )
    p.add_argument("--grid-smoothness", type=float, help="grid roughness weight (0)")
    p.add_argument(
        "--range-penalty", type=float, help="weight of the output's overshoot of [0, 1] (1e5)"
    )
    p.add_argument("--image-size", type=int, help="training crop side in px (256)")
    p.add_argument(
        "--init-from", metavar="CKPT", help="start a new run from this generator's weights"
    )
    p.add_argument("--val-pairs", type=int, help="pairs held out for validation (0)")
    p.add_argument("--val-manifest", help="validate on this manifest instead")
    p.add_argument("--val-every", type=int, help="steps between validations (500)")
    p.add_argument("--val-size", type=int, help="long side of validation images (256)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (500)")
    p.add_argument("--log-every", type=int, help="steps between logged scalars (10)")
    p.add_argument("--image-every", type=int, help="steps between image grids (200)")
    p.add_argument(
        "--min-region",
        type=float,
        metavar="FRACTION",
        help="merge regions under this fraction of either image, in both alike (default 0)",
    )
    p.add_argument(
        "--backbone",
        choices=("vgg19", "random"),
        help="objective backbone (vgg19: the Caffe weights, downloaded on first use)",
    )
    p.add_argument(
        "--vgg-weights", help="VGG-19 weights file (or env DPST_VGG_WEIGHTS), or 'torchvision'"
    )
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="DataLoader worker processes (0)")
    p.add_argument("--threads", type=int, help="CPU threads per process (PyTorch's default)")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="no mixed precision on CUDA")  # fmt: skip
    p.add_argument("--no-check-files", dest="check_files", action="store_false", default=None,
                   help="skip decoding every file before training")  # fmt: skip
    p.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_config(args: argparse.Namespace):
    """Defaults, then ``--config``, then flags: the resolved TrainConfig."""
    from dpst.config import load_config_file, update_dataclass
    from dpst.train.config import TrainConfig

    config = TrainConfig()
    if args.config:
        config = update_dataclass(config, load_config_file(args.config))
    flags = {field: getattr(args, dest) for dest, field in _FLAGS.items()}
    config = update_dataclass(config, {k: v for k, v in flags.items() if v is not None})
    if args.image_size is not None:
        size = [args.image_size, args.image_size]
        config = update_dataclass(config, {"augment": {"size": size}})
    if args.min_region is not None:
        config = update_dataclass(config, {"labels": {"min_fraction": args.min_region}})
    backbone: dict = {}
    if args.backbone:
        backbone["name"] = args.backbone
    if args.vgg_weights:
        backbone["weights"] = args.vgg_weights
    return update_dataclass(config, {"backbone": backbone})


def run(args: argparse.Namespace) -> int:
    from dpst.train.loop import train

    config = build_config(args)
    summary = train(
        config, args.manifest, args.run_dir, stop_at=args.stop_at, progress=not args.quiet
    )
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
