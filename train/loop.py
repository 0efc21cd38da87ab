"""The generator's training loop: ``train(config, manifest, run_dir)``.

Run folder::

    RUN/config.json      the resolved config, backbone identity, data split (each start)
    RUN/config_history.jsonl  every start's config and the settings it changed
    RUN/last.pt          the latest checkpoint (atomic; model + optimiser + scheduler + RNG
                         + step + data position); a run started again resumes from it
    RUN/prev.pt          the one before, resumed from when last.pt cannot be read
    RUN/metrics.jsonl    one line per logged step and per validation
    RUN/tensorboard/     every loss term, the learning rate, image grids, validation
    RUN/summary.json     how the last start ended

Under ``torchrun`` every rank runs this function: DistributedDataParallel over NCCL (GPUs)
or gloo (CPU processes), each rank its own share of every epoch (:mod:`sampler`); rank 0
logs, validates and writes checkpoints. SIGTERM or Ctrl-C ends the current step, writes a
checkpoint and returns (every rank agrees on the step to stop at). A resume with changed
settings is refused unless ``reconfigure`` is given (:mod:`resume_settings`). The loop is
:mod:`skeleton`'s, as ``dpst train-looks``'s; this module holds the step, its checkpoint
and what only this trainer does (manifests, DDP, the backbone, validation on held-out pairs).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed
from torch.nn.parallel import DistributedDataParallel

from dpst.config import validated
from dpst.data.augment import PairAugment
from dpst.data.dataset import PairDataset
from dpst.data.manifest import Entry, check_entry, read_manifest
from dpst.devices import resolve_device
from dpst.errors import InputError
from dpst.imageio import write_json
from dpst.models.bundle import load_generator
from dpst.models.generator import Generator, GeneratorConfig
from dpst.optim_reference.vgg import load_backbone
from dpst.train import dist
from dpst.train.config import TrainConfig, lr_factor
from dpst.train.evaluate import EvalConfig
from dpst.train.run_checkpoints import RunCheckpoints
from dpst.train.sampler import EpochIndexed, batches_from
from dpst.train.skeleton import SUMMARY_FILE, ProgressLine, RunLog, due, resume, run_steps
from dpst.train.state import (
    TrainState,
    capture_rng,
    restore_rng,
    run_checkpoints,
    train_state_extra,
)
from dpst.train.step import compute_loss, optimiser_step, prepare_batch
from dpst.train.validation import Validation, split_validation

# The numbers worth watching besides the loss: the objective against the reference's, and
# the L1 to the optimiser's target.
PROGRESS = ProgressLine((("J/J_ref", "objective_ratio", ".3f"), ("L1", "distill_l1", ".4f")))


def _read_entries(path: str | Path) -> list[Entry]:
    entries, problems = read_manifest(path)
    if problems:
        listed = "; ".join(str(p) for p in problems[:3])
        raise InputError(f"{path}: {len(problems)} bad line(s): {listed}")
    return entries


def check_files(entries: list[Entry]) -> None:
    """Every file decodes and every mask or target has its photo's aspect ratio, or an
    InputError naming the first bad pair (before hours of training, not in the middle)."""
    cache: dict = {}
    for entry in entries:
        problems = check_entry(entry, cache)
        if problems:
            raise InputError(f"pair {entry.id} (line {entry.line}): {problems[0]}")


def _agree(flag: bool, ctx, device) -> bool:
    """True on every rank when any rank's ``flag`` is true."""
    if not ctx.initialised:
        return flag
    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _mean_over_ranks(logs: dict[str, float], ctx, device) -> dict[str, float]:
    if not ctx.initialised:
        return logs
    keys = sorted(logs)
    values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    return dict(zip(keys, (values / ctx.world).tolist(), strict=True))


def _device(config: TrainConfig, ctx) -> torch.device:
    if ctx.world > 1:  # torchrun: this rank's GPU, or the CPU
        return torch.device(ctx.device or "cpu")
    return resolve_device(config.device)


def train(
    config: TrainConfig,
    manifest: str | Path,
    run_dir: str | Path,
    *,
    stop_at: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    reconfigure: bool = False,
) -> dict[str, Any] | None:
    """Train (or resume training) the generator on ``manifest``; see the module docstring.

    Args:
        stop_at: stop after this many steps in total (a checkpoint is written), as an
            interruption would; ``None`` runs to ``config.steps``.
        on_step: called on rank 0 after every step with ``(step, logs)``.
        reconfigure: resume even when ``config`` changes settings of the checkpoint's
            (recorded in ``RUN/config_history.jsonl``); without it that is an InputError.

    Returns:
        On rank 0, the summary also written to ``RUN/summary.json``; None on other ranks.

    Raises:
        InputError: bad settings, manifest lines, files, labels or checkpoint.
    """
    config = _model_of_init(validated(config, "train config"))
    run_dir = Path(run_dir)
    entries = _read_entries(manifest)
    if config.val_manifest:
        train_entries, val_entries = entries, _read_entries(config.val_manifest)
    else:
        train_entries, val_entries = split_validation(entries, config.val_pairs)
    if not train_entries:
        raise InputError(f"{manifest}: no pairs left to train on after holding out validation")
    if config.check_files:
        check_files(train_entries + val_entries)
    if config.threads:
        torch.set_num_threads(config.threads)
    # Every rank reads and checks everything above before joining the group, so a user
    # error stops every rank alike instead of leaving the others waiting.
    ctx = dist.setup(use_cuda=config.device != "cpu" and torch.cuda.is_available())
    try:
        return _train(config, train_entries, val_entries, manifest, run_dir, ctx, stop_at,
                      progress, on_step, reconfigure)  # fmt: skip
    finally:
        dist.shutdown(ctx)


def _model_of_init(config: TrainConfig) -> TrainConfig:
    """With ``init_from`` and no model settings of its own, the run takes the starting
    generator's (``--init-from bundled`` fine-tunes the shipped model as it is)."""
    if not config.init_from or config.model != GeneratorConfig():
        return config
    return dataclasses.replace(config, model=load_generator(config.init_from).config)


def _load_initial_weights(model, path: str) -> None:
    """Start from another run's generator (fine-tuning): its weights only, a fresh schedule."""
    start = load_generator(path)
    if start.config != model.config:
        raise InputError(
            f"--init-from {path} holds a generator of another config ({start.config}); pass "
            f"the same model settings (e.g. --config with that run's config.json)"
        )
    model.load_state_dict(start.state_dict())


def _model_and_state(
    config: TrainConfig, checkpoints: RunCheckpoints, device: torch.device, reconfigure: bool,
    is_main: bool,
):  # fmt: skip
    """``(generator, training state, settings changed)``: resumed from the run's checkpoint
    when it has one, else new (seeded, optionally from another run's weights)."""
    resumed, changes = resume(checkpoints, config, reconfigure, lambda state: state.config,
                              map_location=device, warn=is_main)  # fmt: skip
    if resumed is not None:
        return resumed.model, resumed.state, changes
    torch.manual_seed(config.seed)
    model, state = Generator(config.model).to(device), TrainState()
    if config.init_from:
        _load_initial_weights(model, config.init_from)
    return model, state, {}


class _Optimisers:
    """Adam, its learning-rate schedule and the gradient scaler, restored from ``state``."""

    def __init__(self, model, config: TrainConfig, device: torch.device, state: TrainState):
        self.optimizer = torch.optim.Adam(
            model.parameters(), config.lr, betas=tuple(config.betas),
            weight_decay=config.weight_decay,
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config)
        )
        self.fp16 = device.type == "cuda" and config.amp and config.amp_dtype == "float16"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.fp16)
        if state.optimizer is not None:
            self.optimizer.load_state_dict(state.optimizer)
            self.scheduler.load_state_dict(state.scheduler)
            if state.scaler:
                self.scaler.load_state_dict(state.scaler)

    def save_into(self, state: TrainState) -> None:
        state.optimizer, state.scheduler = self.optimizer.state_dict(), self.scheduler.state_dict()
        state.scaler = self.scaler.state_dict() if self.fp16 else None


def _distributed(model, ctx, device: torch.device):
    """The module the steps run: DistributedDataParallel under torchrun, else the model."""
    if not ctx.initialised:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _batches(config: TrainConfig, entries: list[Entry], state: TrainState, ctx, device):
    """``(data position after the batch, batch)`` pairs from where ``state`` left off (this
    rank's share)."""
    dataset = EpochIndexed(PairDataset(entries, PairAugment(config.augment), config.seed))
    args = (len(entries), config.batch_size, config.seed, ctx.rank, ctx.world)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=(keys for _, keys in batches_from(state.position, *args)),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    positions = (position for position, _ in batches_from(state.position, *args))
    return zip(positions, loader, strict=False)


def _header(config: TrainConfig, manifest, train_entries, val_entries, ctx, device, identity,
            resumed_from: int, changes: dict) -> dict[str, Any]:  # fmt: skip
    """``config.json``: what this start ran with and on."""
    return {
        "config": config.to_dict(),
        "backbone": identity,
        "manifest": str(Path(manifest).resolve()),
        "train_pairs": len(train_entries),
        "validation_ids": [e.id for e in val_entries],
        "world_size": ctx.world,
        "device": str(device),
        "resumed_from_step": resumed_from,
        "reconfigured": changes,
    }


class _Learner:
    """The generator (under DDP when distributed), the backbone its loss runs through, its
    optimisers and its training state: what the steps change and a checkpoint keeps."""

    def __init__(self, config: TrainConfig, model, state: TrainState, backbone, ctx,
                 device: torch.device, checkpoints: RunCheckpoints) -> None:  # fmt: skip
        self.config, self.model, self.state = config, model, state
        self.net, self.identity = backbone
        self.ctx, self.device, self.checkpoints = ctx, device, checkpoints
        self.ddp = _distributed(model, ctx, device)
        self.opt = _Optimisers(model, config, device, state)

    def take_step(self, step: int, item) -> tuple[dict, torch.Tensor, dict[str, float]]:
        """One optimiser step on ``(data position after it, batch)``; the logs are the mean
        over the ranks at the steps that log them (every rank takes part)."""
        config, device, opt = self.config, self.device, self.opt
        after, raw = item
        batch = prepare_batch(raw, config, device)
        loss, output, logs = compute_loss(self.ddp, self.net, batch, config, device)
        logs.update(optimiser_step(loss, self.ddp, opt.optimizer, opt.scheduler, opt.scaler,
                                   config))  # fmt: skip
        self.state.step, self.state.position = step, after
        if due(step, config.log_every):
            logs = _mean_over_ranks(logs, self.ctx, device)
        return batch, output, logs

    def save(self, step: int, finished: bool, interrupted: bool) -> None:
        """Every rank gathers its state (random generators included); rank 0 writes it."""
        state = self.state
        self.opt.save_into(state)
        state.rng, state.config = capture_rng(), self.config.to_dict()
        state.backbone = self.identity
        state.finished, state.interrupted = finished, interrupted
        if self.ctx.is_main:
            self.checkpoints.save(self.model, train_state_extra(state))

    def agree(self, flag: bool) -> bool:
        return _agree(flag, self.ctx, self.device)


def _run_log(config: TrainConfig, run_dir: Path, header: dict[str, Any], val_entries,
             learner: _Learner, progress: bool) -> RunLog:  # fmt: skip
    """Rank 0's run log, validating on the held-out pairs when the run has any."""
    validate = None
    if val_entries and config.val_every:
        eval_cfg = EvalConfig(config.val_size, config.weights, config.matting, config.labels)
        backbone = (learner.net, learner.identity)
        validate = functools.partial(Validation(val_entries, eval_cfg, backbone, learner.device),
                                     learner.model)  # fmt: skip
    return RunLog(run_dir, config, header, PROGRESS, progress=progress, validate=validate)


def _train(
    config, train_entries, val_entries, manifest, run_dir, ctx, stop_at, progress, on_step,
    reconfigure,
):  # fmt: skip
    t_start = time.perf_counter()
    device = _device(config, ctx)
    checkpoints = run_checkpoints(run_dir)
    # Before the backbone (VGG-19 is 550 MB): a refused resume should cost nothing.
    model, state, changes = _model_and_state(config, checkpoints, device, reconfigure,
                                             ctx.is_main)  # fmt: skip
    backbone = load_backbone(config.backbone, device)
    model.train()
    resumed_from = state.step
    state.validation_ids = [e.id for e in val_entries]
    learner = _Learner(config, model, state, backbone, ctx, device, checkpoints)
    if state.rng is not None:
        restore_rng(state.rng)
    log = None
    if ctx.is_main:
        header = _header(config, manifest, train_entries, val_entries, ctx, device, backbone[1],
                         resumed_from, changes)  # fmt: skip
        log = _run_log(config, run_dir, header, val_entries, learner, progress)
    outcome = run_steps(
        config, state.step, _batches(config, train_entries, state, ctx, device),
        learner.take_step, learner.save, log, stop_at=stop_at, on_step=on_step,
        agree=learner.agree,
    )  # fmt: skip
    if log is None:
        return None
    log.close()
    summary = {
        "steps": outcome.step,
        "resumed_from_step": resumed_from,
        "finished": outcome.step >= config.steps,
        "interrupted": outcome.interrupted,
        "checkpoint": str(checkpoints.last),
        "reconfigured": changes,
        "seconds": round(time.perf_counter() - t_start, 3),
        "world_size": ctx.world,
        "backbone": backbone[1],
        "last": outcome.logs,
        "validation": log.val_scalars,
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary
