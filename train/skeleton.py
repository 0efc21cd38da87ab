"""The one skeleton of both training loops (``dpst train`` and ``dpst train-looks``).

A trainer brings its own step (a batch in; the batch, the output and the logs out), its own
checkpoint contents and its own files; everything a run must do the same way whatever it
learns lives here once, so that the two commands cannot drift apart:

- :func:`resume`: the newest usable checkpoint, its settings checked against this start's;
- :class:`RunLog`: rank 0's record (``config.json``, ``config_history.jsonl``,
  ``metrics.jsonl``, TensorBoard, progress lines), each at its own interval;
- :func:`run_steps`: the steps, with the checkpoint cadence and the stop on SIGTERM, SIGHUP,
  Ctrl-C or ``stop_at``, each of which writes a checkpoint first.

The intervals are the trainer's settings (:class:`Cadence`): both configs name them alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.tensorboard import SummaryWriter

from dpst.errors import InputError
from dpst.imageio import write_json
from dpst.train.resume_settings import check_resume, record_start
from dpst.train.run_checkpoints import Resumed, RunCheckpoints
from dpst.train.run_log import append_jsonl, drop_lines_after, image_grid
from dpst.train.stop_signal import StopSignal

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, TENSORBOARD_DIR = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "tensorboard",
)


class Cadence(Protocol):
    """The settings the skeleton reads from a trainer's config (steps; intervals, 0: never)."""

    steps: int
    log_every: int
    image_every: int
    val_every: int
    checkpoint_every: int


class TrainerConfig(Protocol):
    """What :func:`resume` needs of a trainer's config."""

    model: Any

    def to_dict(self) -> dict[str, Any]: ...


def due(step: int, every: int) -> bool:
    """Whether an interval of ``every`` steps (0: never) ends at ``step``; counted from step
    0 of the run, not of this start, so a resumed run logs and saves at the same steps."""
    return bool(every) and step % every == 0


def resume(
    checkpoints: RunCheckpoints,
    config: TrainerConfig,
    reconfigure: bool,
    config_of: Callable[[Any], dict[str, Any] | None],
    *,
    map_location: str | torch.device = "cpu",
    warn: bool = True,
) -> tuple[Resumed | None, dict[str, list]]:
    """``(checkpoint or None, settings changed)``: the run's newest usable checkpoint, once
    its settings (``config_of(state)``) and its generator allow this start to go on from it.

    Checked before any data or network is loaded, so that a refused resume costs nothing.

    Raises:
        InputError: settings changed without ``reconfigure`` (:func:`check_resume`), a
            checkpoint of another generator config (its weights fit no other), or no usable
            checkpoint.
    """
    resumed = checkpoints.load(map_location, warn=warn)
    if resumed is None:
        return None, {}
    changes = check_resume(checkpoints.run_dir, resumed.path, config_of(resumed.state),
                           config.to_dict(), reconfigure)  # fmt: skip
    if resumed.model.config != config.model:
        raise InputError(
            f"{resumed.path} holds a generator of another config ({resumed.model.config}); "
            f"its weights fit no other, so resume with its model settings or use another "
            f"--run-dir"
        )
    return resumed, changes


@dataclass(frozen=True)
class ProgressLine:
    """A trainer's progress line: ``step S/N  loss L  <terms>  lr R  T s/step``, where the
    terms are the few numbers worth watching in that trainer's logs.

    Attributes:
        terms: ``(label, logs key, format spec)`` each, e.g. ``("L1", "distill_l1", ".4f")``.
        validation: also print the validation scores when they are computed.
    """

    terms: tuple[tuple[str, str, str], ...]
    validation: bool = False

    def format(self, step: int, steps: int, logs: dict[str, float], seconds: float) -> str:
        shown = [f"{label} {logs[key]:{spec}}" for label, key, spec in self.terms]
        return "  ".join([f"step {step}/{steps}", f"loss {logs['loss']:.4f}", *shown,
                          f"lr {logs['lr']:.2e}", f"{seconds:.2f} s/step"])  # fmt: skip


# A validation: () -> (scalars named "val/...", images for TensorBoard).
Validate = Callable[[], tuple[dict[str, float], list[torch.Tensor]]]


class RunLog:
    """Rank 0's record of a run: what it ran with, and what each step and validation gave.

    Starting one writes the start into ``config_history.jsonl`` and ``header`` into
    ``config.json``, and forgets the metrics and TensorBoard events logged past the step it
    resumes from (they are logged again as those steps are redone). ``header`` holds the
    trainer's own description of the run, with at least ``config`` (the resolved settings),
    ``resumed_from_step`` and ``reconfigured`` (the settings changed).
    """

    def __init__(
        self,
        run_dir: Path,
        cadence: Cadence,
        header: dict[str, Any],
        line: ProgressLine,
        *,
        progress: bool,
        validate: Validate | None = None,
    ) -> None:
        self.run_dir, self.cadence, self.line, self.progress = run_dir, cadence, line, progress
        self.validate = validate
        resumed_from = header["resumed_from_step"]
        record_start(run_dir, resumed_from, header["config"], header["reconfigured"])
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, header)
        drop_lines_after(run_dir / METRICS_FILE, resumed_from)
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=resumed_from + 1)
        self.val_scalars: dict[str, float] = {}  # the latest validation's, for the summary
        self._since, self._t_log = 0, time.perf_counter()

    def after_step(self, step: int, logs: dict[str, float], batch: dict, output) -> None:
        """Scalars, an image grid and a validation, each when its interval ends here."""
        self._since += 1
        if due(step, self.cadence.log_every):
            self._scalars(step, logs)
        if due(step, self.cadence.image_every):
            self.writer.add_image("train/content_style_output_target", image_grid(batch, output),
                                  step)  # fmt: skip
        if self.validate is not None and due(step, self.cadence.val_every):
            self._validation(step)

    def _scalars(self, step: int, logs: dict[str, float]) -> None:
        # Seconds per step since the last logged step: the rate now, not since the start.
        seconds = (time.perf_counter() - self._t_log) / self._since
        self._t_log, self._since = time.perf_counter(), 0
        for key, value in logs.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        append_jsonl(self.run_dir / METRICS_FILE, {"step": step, **logs})
        if self.progress:
            print(self.line.format(step, self.cadence.steps, logs, seconds), flush=True)

    def _validation(self, step: int) -> None:
        assert self.validate is not None
        self.val_scalars, images = self.validate()
        for key, value in self.val_scalars.items():
            self.writer.add_scalar(key, value, step)
        for i, image in enumerate(images):
            self.writer.add_image(f"val/output_{i}", image, step)
        append_jsonl(self.run_dir / METRICS_FILE, {"step": step, **self.val_scalars})
        if self.progress and self.line.validation:
            print("  ".join(f"{k} {v:.3f}" for k, v in self.val_scalars.items()), flush=True)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Outcome:
    """How one start of the loop ended."""

    step: int  # optimiser steps taken in all (this start's and the earlier ones')
    interrupted: bool  # by a signal (SIGTERM, SIGHUP, Ctrl-C), not by ``stop_at``
    logs: dict[str, float]  # the last step's


# (step number, the data loader's item) -> (batch, output, logs): one optimiser step.
TakeStep = Callable[[int, Any], tuple[dict, torch.Tensor, dict[str, float]]]
# (step, finished, interrupted) -> None: write the checkpoint (rank 0; every rank may take
# part in gathering what it holds).
Save = Callable[[int, bool, bool], None]


def run_steps(
    cadence: Cadence,
    step: int,
    batches: Iterator[Any],
    take_step: TakeStep,
    save: Save,
    log: RunLog | None,
    *,
    stop_at: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    agree: Callable[[bool], bool] = bool,
) -> Outcome:
    """Steps from ``step`` to ``cadence.steps``, logged on the rank that has ``log``.

    A checkpoint is written every ``checkpoint_every`` steps, at the end, and before
    stopping early: at ``stop_at`` (as an interruption would, for tests and scheduled
    jobs), or after the step in progress when a stop signal arrives (:class:`StopSignal`),
    so that no more than that step is ever lost.

    Args:
        batches: the data from where the run left off, one item per step.
        on_step: called on the logging rank after every step with ``(step, logs)``.
        agree: the stop request every rank acts on (under DDP: any rank's); every rank
            calls it after every step.
    """
    logs: dict[str, float] = {}
    with StopSignal() as stop:
        while step < cadence.steps:
            step += 1
            batch, output, logs = take_step(step, next(batches))
            if log is not None:
                if on_step is not None:
                    on_step(step, dict(logs))
                log.after_step(step, logs, batch, output)
            stopping = agree(stop.requested)
            at_limit = stop_at is not None and step >= stop_at
            finished = step >= cadence.steps
            if stopping or at_limit or finished or due(step, cadence.checkpoint_every):
                save(step, finished, stopping or at_limit)
            if stopping or at_limit:
                return Outcome(step, stopping, logs)
    return Outcome(step, False, logs)
