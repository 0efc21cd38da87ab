"""A training run's checkpoint: the generator plus everything that makes a resume exact.

Written with :func:`dpst.models.checkpoint.save_checkpoint` (atomic: a kill at any moment
leaves the previous checkpoint or the new one; a run folder keeps the last two,
:mod:`run_checkpoints`), so ``dpst eval`` and the exporters read it
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

from dpst.models.checkpoint import load_checkpoint, save_checkpoint
from dpst.models.generator import Generator
from dpst.train.run_checkpoints import LAST, RunCheckpoints, RunStateError
from dpst.train.sampler import DataPosition

STATE_KIND = "dpst-train-state"
LAST_CHECKPOINT = LAST


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


def train_state_extra(state: TrainState) -> dict[str, Any]:
    """``state`` as a checkpoint's ``extra`` (plain types and tensors only)."""
    return {
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


def parse_train_state(path: Path, extra: Any) -> TrainState:
    """The :class:`TrainState` in a checkpoint's ``extra``.

    Raises:
        RunStateError: no training state (a generator exported for inference, or
            ``dpst train-looks``'s), or an incomplete one.
    """
    if not isinstance(extra, dict) or extra.get("kind") != STATE_KIND:
        raise RunStateError(f"{path} holds no training state (not written by dpst train)")
    try:
        return TrainState(
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
        raise RunStateError(f"{path} holds an incomplete training state ({error!r})") from error


def run_checkpoints(run_dir: str | Path) -> RunCheckpoints[TrainState]:
    """``RUN/last.pt`` and ``RUN/prev.pt`` of a ``dpst train`` run."""
    return RunCheckpoints(run_dir, parse_train_state)


def save_train_checkpoint(path: str | Path, model: Generator, state: TrainState) -> None:
    """One checkpoint file (a run folder's pair is :func:`run_checkpoints`'s)."""
    save_checkpoint(path, model, train_state_extra(state))


def load_train_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[Generator, TrainState]:
    """The generator (in train mode) and its :class:`TrainState` from one file.

    Raises:
        InputError: unreadable or corrupt file, or a generator checkpoint without training
            state (one exported for inference).
    """
    model, extra = load_checkpoint(path, map_location)
    return model.train(), parse_train_state(Path(path), extra)
