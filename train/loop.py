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
settings is refused unless ``reconfigure`` is given (:mod:`resume_settings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dpst.config import validated
from dpst.data.manifest import Entry, check_entry, read_manifest
from dpst.errors import InputError
from dpst.imageio import write_json
from dpst.train.config import TrainConfig, lr_factor
from dpst.train.resume_settings import check_resume, record_start
from dpst.train.run_checkpoints import RunCheckpoints
from dpst.train.run_log import append_jsonl, drop_lines_after, image_grid
from dpst.train.sampler import EpochIndexed, batches_from
from dpst.train.state import (
    TrainState,
    capture_rng,
    restore_rng,
    run_checkpoints,
    train_state_extra,
)
from dpst.train.stop_signal import StopSignal
from dpst.train.validation import split_validation

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, TENSORBOARD_DIR = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "tensorboard",
)


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
    import torch.distributed as dist

    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _mean_over_ranks(logs: dict[str, float], ctx, device) -> dict[str, float]:
    if not ctx.initialised:
        return logs
    import torch.distributed as dist

    keys = sorted(logs)
    values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, (values / ctx.world).tolist(), strict=True))


def _device(config: TrainConfig, ctx) -> torch.device:
    from dpst.optim_reference.stylize import resolve_device

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
    from dpst.train import dist

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
    import dataclasses

    from dpst.models.bundle import load_generator
    from dpst.models.generator import GeneratorConfig

    if not config.init_from or config.model != GeneratorConfig():
        return config
    return dataclasses.replace(config, model=load_generator(config.init_from).config)


def _load_initial_weights(model, path: str) -> None:
    """Start from another run's generator (fine-tuning): its weights only, a fresh schedule."""
    from dpst.models.bundle import load_generator

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
    from dpst.models.generator import Generator

    resumed = checkpoints.load(device, warn=is_main)
    if resumed is not None:
        changes = check_resume(checkpoints.run_dir, resumed.path, resumed.state.config,
                               config.to_dict(), reconfigure)  # fmt: skip
        if resumed.model.config != config.model:
            raise InputError(
                f"{resumed.path} holds a generator of another config ({resumed.model.config}); "
                f"its weights fit no other, so resume with its model settings or use another "
                f"--run-dir"
            )
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
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _batches(config: TrainConfig, entries: list[Entry], state: TrainState, ctx, device):
    """``(positions, batches)``: the data position after each batch, and the batches, both
    from where ``state`` left off (this rank's share)."""
    from dpst.data.augment import PairAugment
    from dpst.data.dataset import PairDataset

    dataset = EpochIndexed(PairDataset(entries, PairAugment(config.augment), config.seed))
    args = (len(entries), config.batch_size, config.seed, ctx.rank, ctx.world)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=(keys for _, keys in batches_from(state.position, *args)),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    return batches_from(state.position, *args), iter(loader)


class _RunLog:
    """Rank 0's record of a run: ``config.json``, metrics, TensorBoard, progress lines and
    validation, each at its own interval."""

    def __init__(
        self, config: TrainConfig, run_dir: Path, header: dict[str, Any], progress: bool
    ) -> None:
        """Write ``config.json`` (``header``), forget metrics past the resume point, open
        TensorBoard."""
        from torch.utils.tensorboard import SummaryWriter

        self.config, self.run_dir, self.progress = config, run_dir, progress
        resumed_from = header["resumed_from_step"]
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, header)
        drop_lines_after(run_dir / METRICS_FILE, resumed_from)
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=resumed_from + 1)
        self.validation: Any = None  # set when the run validates
        self.val_scalars: dict[str, float] = {}
        self._since, self._t_log = 0, time.perf_counter()

    def step(self, step: int, logs: dict[str, float], batch: dict, output, model) -> None:
        due = _due(step)
        self._since += 1
        if due(self.config.log_every):
            self._scalars(step, logs)
        if due(self.config.image_every):
            self.writer.add_image("train/content_style_output_target", image_grid(batch, output),
                                  step)  # fmt: skip
        if self.validation is not None and due(self.config.val_every):
            self.val_scalars, images = self.validation(model)
            for key, value in self.val_scalars.items():
                self.writer.add_scalar(key, value, step)
            for i, image in enumerate(images):
                self.writer.add_image(f"val/output_{i}", image, step)
            append_jsonl(self.run_dir / METRICS_FILE, {"step": step, **self.val_scalars})

    def _scalars(self, step: int, logs: dict[str, float]) -> None:
        seconds = (time.perf_counter() - self._t_log) / self._since
        self._t_log, self._since = time.perf_counter(), 0
        for key, value in logs.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        append_jsonl(self.run_dir / METRICS_FILE, {"step": step, **logs})
        if self.progress:
            print(
                f"step {step}/{self.config.steps}  loss {logs['loss']:.4f}  "
                f"J/J_ref {logs['objective_ratio']:.3f}  "
                f"L1 {logs['distill_l1']:.4f}  lr {logs['lr']:.2e}  "
                f"{seconds:.2f} s/step",
                flush=True,
            )

    def close(self) -> None:
        self.writer.close()


def _due(step: int) -> Callable[[int], bool]:
    """Whether an interval of ``every`` steps (0: never) ends at ``step``."""
    return lambda every: bool(every) and step % every == 0


def _train(
    config, train_entries, val_entries, manifest, run_dir, ctx, stop_at, progress, on_step,
    reconfigure,
):  # fmt: skip
    from dpst.optim_reference.vgg import load_backbone
    from dpst.train.evaluate import EvalConfig
    from dpst.train.step import compute_loss, optimiser_step, prepare_batch
    from dpst.train.validation import Validation

    t_start = time.perf_counter()
    device = _device(config, ctx)
    checkpoints = run_checkpoints(run_dir)
    # Before the backbone (VGG-19 is 550 MB): a refused resume should cost nothing.
    model, state, changes = _model_and_state(config, checkpoints, device, reconfigure,
                                             ctx.is_main)  # fmt: skip
    net, identity = load_backbone(config.backbone, device)
    model.train()
    resumed_from = state.step
    state.validation_ids = [e.id for e in val_entries]
    ddp = _distributed(model, ctx, device)
    opt = _Optimisers(model, config, device, state)
    if state.rng is not None:
        restore_rng(state.rng)

    log = None
    if ctx.is_main:
        header = {
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
        record_start(run_dir, resumed_from, config.to_dict(), changes)
        log = _RunLog(config, run_dir, header, progress)
        if val_entries and config.val_every:
            eval_cfg = EvalConfig(config.val_size, config.weights, config.matting, config.labels)
            log.validation = Validation(val_entries, eval_cfg, (net, identity), device)
    positions, batches = _batches(config, train_entries, state, ctx, device)

    def save(finished: bool, interrupted: bool) -> None:
        opt.save_into(state)
        state.rng, state.config, state.backbone = capture_rng(), config.to_dict(), identity
        state.finished, state.interrupted = finished, interrupted
        if ctx.is_main:
            checkpoints.save(model, train_state_extra(state))

    logs: dict[str, float] = {}
    interrupted = False
    with StopSignal() as stop:
        while state.step < config.steps:
            after, _ = next(positions)
            batch = prepare_batch(next(batches), config, device)
            loss, output, logs = compute_loss(ddp, net, batch, config, device)
            logs.update(optimiser_step(loss, ddp, opt.optimizer, opt.scheduler, opt.scaler, config))
            state.step, state.position = state.step + 1, after
            due = _due(state.step)
            logs = _mean_over_ranks(logs, ctx, device) if due(config.log_every) else logs
            if log is not None:
                if on_step is not None:
                    on_step(state.step, dict(logs))
                log.step(state.step, logs, batch, output, model)
            stopping = _agree(stop.requested, ctx, device)
            at_limit = stop_at is not None and state.step >= stop_at
            finished = state.step >= config.steps
            if stopping or at_limit or finished or due(config.checkpoint_every):
                save(finished, stopping or at_limit)
            if stopping or at_limit:
                interrupted = stopping
                break
    if log is None:
        return None
    log.close()
    summary = {
        "steps": state.step,
        "resumed_from_step": resumed_from,
        "finished": state.step >= config.steps,
        "interrupted": interrupted,
        "checkpoint": str(checkpoints.last),
        "reconfigured": changes,
        "seconds": round(time.perf_counter() - t_start, 3),
        "world_size": ctx.world,
        "backbone": identity,
        "last": logs,
        "validation": log.val_scalars,
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary
