"""The generator's training loop: ``train(config, manifest, run_dir)``.

Run folder::

    RUN/config.json      the resolved config, backbone identity, data split (each start)
    RUN/last.pt          the latest checkpoint (atomic; model + optimiser + scheduler + RNG
                         + step + data position); a run started again resumes from it
    RUN/metrics.jsonl    one line per logged step and per validation
    RUN/tensorboard/     every loss term, the learning rate, image grids, validation
    RUN/summary.json     how the last start ended

Under ``torchrun`` every rank runs this function: DistributedDataParallel over NCCL (GPUs)
or gloo (CPU processes), each rank its own share of every epoch (:mod:`sampler`); rank 0
logs, validates and writes checkpoints. SIGTERM or Ctrl-C ends the current step, writes a
checkpoint and returns (every rank agrees on the step to stop at).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dpst.data.manifest import Entry, check_entry, read_manifest
from dpst.errors import InputError
from dpst.imageio import write_json
from dpst.train.config import TrainConfig, lr_factor
from dpst.train.run_log import append_jsonl, drop_lines_after, image_grid
from dpst.train.sampler import EpochIndexed, batches_from
from dpst.train.state import (
    LAST_CHECKPOINT,
    TrainState,
    capture_rng,
    load_train_checkpoint,
    restore_rng,
    save_train_checkpoint,
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
) -> dict[str, Any] | None:
    """Train (or resume training) the generator on ``manifest``; see the module docstring.

    Args:
        stop_at: stop after this many steps in total (a checkpoint is written), as an
            interruption would; ``None`` runs to ``config.steps``.
        on_step: called on rank 0 after every step with ``(step, logs)``.

    Returns:
        On rank 0, the summary also written to ``RUN/summary.json``; None on other ranks.

    Raises:
        InputError: bad settings, manifest lines, files, labels or checkpoint.
    """
    from dpst.train import dist

    try:
        config.validate()
    except ValueError as err:
        raise InputError(f"train config: {err}") from None
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
                      progress, on_step)  # fmt: skip
    finally:
        dist.shutdown(ctx)


def _load_initial_weights(model, path: str) -> None:
    """Start from another run's generator (fine-tuning): its weights only, a fresh schedule."""
    from dpst.models.checkpoint import load_checkpoint

    start, _ = load_checkpoint(path)
    if start.config != model.config:
        raise InputError(
            f"--init-from {path} holds a generator of another config ({start.config}); pass "
            f"the same model settings (e.g. --config with that run's config.json)"
        )
    model.load_state_dict(start.state_dict())


def _train(config, train_entries, val_entries, manifest, run_dir, ctx, stop_at, progress, on_step):
    from dpst.data.augment import PairAugment
    from dpst.data.dataset import PairDataset
    from dpst.models.generator import Generator
    from dpst.optim_reference.vgg import load_backbone
    from dpst.train.evaluate import EvalConfig
    from dpst.train.step import compute_loss, optimiser_step, prepare_batch
    from dpst.train.validation import Validation

    t_start = time.perf_counter()
    device = _device(config, ctx)
    net, identity = load_backbone(config.backbone, device)
    checkpoint = run_dir / LAST_CHECKPOINT
    if checkpoint.exists():
        model, state = load_train_checkpoint(checkpoint, device)
        if model.config != config.model:
            raise InputError(
                f"{checkpoint} holds a generator of another config ({model.config}); use "
                f"the same model settings to resume, or another --run-dir"
            )
    else:
        torch.manual_seed(config.seed)
        model, state = Generator(config.model).to(device), TrainState()
        if config.init_from:
            _load_initial_weights(model, config.init_from)
    model.train()
    resumed_from = state.step
    state.validation_ids = [e.id for e in val_entries]
    ddp = model
    if ctx.initialised:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
    optimizer = torch.optim.Adam(
        model.parameters(), config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    fp16 = device.type == "cuda" and config.amp and config.amp_dtype == "float16"
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        if state.scaler:
            scaler.load_state_dict(state.scaler)
    if state.rng is not None:
        restore_rng(state.rng)

    writer = None
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            run_dir / CONFIG_FILE,
            {
                "config": config.to_dict(),
                "backbone": identity,
                "manifest": str(Path(manifest).resolve()),
                "train_pairs": len(train_entries),
                "validation_ids": [e.id for e in val_entries],
                "world_size": ctx.world,
                "device": str(device),
                "resumed_from_step": resumed_from,
            },
        )
        drop_lines_after(run_dir / METRICS_FILE, resumed_from)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=resumed_from + 1)
    validation = None
    if ctx.is_main and val_entries and config.val_every:
        eval_cfg = EvalConfig(config.val_size, config.weights, config.matting, config.labels)
        validation = Validation(val_entries, eval_cfg, (net, identity), device)

    dataset = EpochIndexed(PairDataset(train_entries, PairAugment(config.augment), config.seed))
    args = (len(train_entries), config.batch_size, config.seed, ctx.rank, ctx.world)
    positions = batches_from(state.position, *args)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=(keys for _, keys in batches_from(state.position, *args)),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    batches = iter(loader)

    def save(finished: bool, interrupted: bool) -> None:
        state.optimizer, state.scheduler = optimizer.state_dict(), scheduler.state_dict()
        state.scaler = scaler.state_dict() if fp16 else None
        state.rng, state.config, state.backbone = capture_rng(), config.to_dict(), identity
        state.finished, state.interrupted = finished, interrupted
        if ctx.is_main:
            save_train_checkpoint(checkpoint, model, state)

    def due(every: int) -> bool:
        return bool(every) and state.step % every == 0

    logs: dict[str, float] = {}
    val_scalars: dict[str, float] = {}
    interrupted = False
    t_log, steps_since_log = time.perf_counter(), 0
    with StopSignal() as stop:
        while state.step < config.steps:
            after, _ = next(positions)
            batch = prepare_batch(next(batches), config, device)
            loss, output, logs = compute_loss(ddp, net, batch, config, device)
            logs.update(optimiser_step(loss, ddp, optimizer, scheduler, scaler, config))
            state.step, state.position = state.step + 1, after
            steps_since_log += 1
            logs = _mean_over_ranks(logs, ctx, device) if due(config.log_every) else logs
            if ctx.is_main:
                if on_step is not None:
                    on_step(state.step, dict(logs))
                if due(config.log_every):
                    seconds = (time.perf_counter() - t_log) / steps_since_log
                    t_log, steps_since_log = time.perf_counter(), 0
                    for key, value in logs.items():
                        writer.add_scalar(f"train/{key}", value, state.step)
                    append_jsonl(run_dir / METRICS_FILE, {"step": state.step, **logs})
                    if progress:
                        print(
                            f"step {state.step}/{config.steps}  loss {logs['loss']:.4f}  "
                            f"J/J_ref {logs['objective_ratio']:.3f}  "
                            f"L1 {logs['distill_l1']:.4f}  lr {logs['lr']:.2e}  "
                            f"{seconds:.2f} s/step",
                            flush=True,
                        )
                if due(config.image_every):
                    writer.add_image("train/content_style_output_target", image_grid(batch, output),
                                     state.step)  # fmt: skip
                if validation is not None and due(config.val_every):
                    val_scalars, images = validation(model)
                    for key, value in val_scalars.items():
                        writer.add_scalar(key, value, state.step)
                    for i, image in enumerate(images):
                        writer.add_image(f"val/output_{i}", image, state.step)
                    append_jsonl(run_dir / METRICS_FILE, {"step": state.step, **val_scalars})
            stopping = _agree(stop.requested, ctx, device)
            at_limit = stop_at is not None and state.step >= stop_at
            finished = state.step >= config.steps
            if stopping or at_limit or finished or due(config.checkpoint_every):
                save(finished, stopping or at_limit)
            if stopping or at_limit:
                interrupted = stopping
                break
    if writer is not None:
        writer.close()
    if not ctx.is_main:
        return None
    summary = {
        "steps": state.step,
        "resumed_from_step": resumed_from,
        "finished": state.step >= config.steps,
        "interrupted": interrupted,
        "checkpoint": str(checkpoint),
        "seconds": round(time.perf_counter() - t_start, 3),
        "world_size": ctx.world,
        "backbone": identity,
        "last": logs,
        "validation": val_scalars,
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary
