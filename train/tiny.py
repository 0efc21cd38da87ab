"""The tiniest ``dpst train`` run, for the tests and the fault drills (``bench.faults``).

A 32 px generator on 32 px crops with the random backbone, one pair per step, logging every
step and nothing else: it exercises the machinery (resume, signals, checkpoints, bad input)
in seconds, not the model's quality. JSON-ready settings, so that a test can layer them on
:class:`~dpst.train.config.TrainConfig` and a drill can write them as a ``--config`` file;
this module imports nothing, so a drill that never trains in-process stays torch-free.
"""

from __future__ import annotations

from typing import Any


def tiny_train_settings() -> dict[str, Any]:
    """The tiny run's settings (a new dict each call: callers add their own, e.g. ``steps``)."""
    return {
        "model": {
            "working_size": 32,
            "grid_size": 8,
            "luma_bins": 4,
            "max_labels": 4,
            "encoder_widths": [8, 8],
            "head_width": 8,
            "global_levels": 1,
        },
        "augment": {"size": [32, 32]},
        "backbone": {"name": "random"},
        "batch_size": 1,
        "warmup_steps": 0,
        "log_every": 1,
        "image_every": 0,
        "val_every": 0,
        "checkpoint_every": 0,
        "threads": 1,
    }
