"""A training run's checkpoint: the generator plus everything that makes a resume exact.

Written with :func:`dpst.models.checkpoint.save_checkpoint` (atomic: a kill at any moment
leaves the previous checkpoint or the new one), so ``dpst eval`` and the exporters read it
like any generator checkpoint; the training state travels in its ``extra``:
step, data position, optimiser, scheduler, gradient scaler, random generators, the
resolved config, the backbone's identity and the ids of the held-out pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpst.errors import InputError
from dpst.models.checkpoint import load_checkpoint, save_checkpoint
from dpst.models.generator import Generator
from dpst.train.sampler import DataPosition

STATE_KIND = "dpst-train-state"
LAST_CHECKPOINT = "last.pt"


@dataclass
class TrainState:
    """What a resume restores besides the weights."""

    step: int = 0  # optimiser steps taken
    position: DataPosition = field(default_factory=DataPosition)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    backbone: dict[str, Any] | None = None
    validation_ids: list[str] | None = None  # held out of training (``dpst eval --held-out``)
    finished: bool = False
    interrupted: bool = False


def capture_rng() -> dict[str, Any]:
    """Every random generator a step may draw from, as types ``torch.load`` accepts safely."""
    # NumPy's legacy global generator: third-party code (augmentation) may draw from it.
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    # The checkpoint may have been loaded onto a GPU; generator states live on the CPU.
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_train_checkpoint(path: str | Path, model: Generator, state: TrainState) -> None:
    extra = {
        "kind": STATE_KIND,
        "step": state.step,
        "epoch": state.position.epoch,
        "batch": state.position.batch,
        "optimizer": state.optimizer,
        "scheduler": state.scheduler,
        "scaler": state.scaler,
        "rng": state.rng,
        "config": state.config,
        "backbone": state.backbone,
        "validation_ids": state.validation_ids,
        "finished": state.finished,
        "interrupted": state.interrupted,
    }
    save_checkpoint(path, model, extra)


def load_train_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[Generator, TrainState]:
    """The generator (in train mode) and its :class:`TrainState`.

    Raises:
        InputError: unreadable or corrupt file, or a generator checkpoint without training
            state (one exported for inference).
    """
    model, extra = load_checkpoint(path, map_location)
    if not isinstance(extra, dict) or extra.get("kind") != STATE_KIND:
        raise InputError(f"{path} holds no training state (not written by dpst train)")
    try:
        state = TrainState(
            step=int(extra["step"]),
            position=DataPosition(int(extra["epoch"]), int(extra["batch"])),
            optimizer=extra["optimizer"],
            scheduler=extra["scheduler"],
            scaler=extra.get("scaler"),
            rng=extra.get("rng"),
            config=extra.get("config"),
            backbone=extra.get("backbone"),
            validation_ids=extra.get("validation_ids"),
            finished=bool(extra.get("finished", False)),
            interrupted=bool(extra.get("interrupted", False)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: incomplete training state ({error!r})") from error
    return model.train(), state
