"""``dpst train-looks``: train the one-pass generator on photos and looks, no pretrained network
(thin layer over :func:`dpst.train.look_training.train_looks`).

    dpst train-looks PHOTOS/ LOOKS/ --run-dir runs/looks

Run the same command again to resume (as ``dpst train``: from ``last.pt``, or ``prev.pt``
when that one is damaged; a changed setting refused unless ``--reconfigure``). Settings:
defaults (the bundled model's), then the run's checkpoint's when it resumes, then ``--config
FILE`` (JSON, e.g. a run's ``config.json``), then these flags.
"""

from __future__ import annotations

import argparse

from dpst.commands import options
from dpst.commands.exit_codes import EXIT_INTERRUPTED

# flag dest -> LookTrainConfig field
FLAGS = {
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
    "crop_size": "pairs.size",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.commands.train import add_step_options

    p.add_argument(
        "photos", metavar="PHOTOS",
        help="folder of photographs (unreadable files are skipped, listed)",
    )  # fmt: skip
    p.add_argument(
        "looks", metavar="LOOKS", help="folder of 3D LUTs: .cube files and Hald CLUT images"
    )
    p.add_argument("--run-dir", required=True, metavar="DIR", help="checkpoints, logs, config")
    options.add_config(p, "LookTrainConfig")
    add_step_options(
        p, {"steps": "2000", "batch_size": "8", "lr": "1e-3", "warmup": "100", "val_pairs": "48"}
    )
    p.add_argument("--crop-size", type=int, metavar="PX", help="training crop side in px (128)")


def run(args: argparse.Namespace) -> int:
    from dpst.commands.resolve import resolve
    from dpst.train.look_training import LookTrainConfig, look_checkpoints, train_looks
    from dpst.train.resume_settings import recorded_config

    recorded = recorded_config(look_checkpoints(args.run_dir), lambda state: state["config"])
    config = resolve(LookTrainConfig(), args, FLAGS, below_file=(recorded or {},))
    summary = train_looks(
        config, args.photos, args.looks, args.run_dir,
        stop_at=args.stop_at, progress=not args.quiet, reconfigure=args.reconfigure,
    )  # fmt: skip
    state = "finished" if summary["finished"] else "stopped"
    print(f"{state} at step {summary['steps']} in {summary['seconds']:.1f} s; "
          f"checkpoint {summary['checkpoint']}")  # fmt: skip
    if summary["skipped_files"]:
        print(f"{len(summary['skipped_files'])} file(s) skipped (listed in summary.json)")
    return EXIT_INTERRUPTED if summary["interrupted"] else 0
