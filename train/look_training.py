"""Training the one-pass generator on looks, without any pretrained network.

``train_looks(config, photos, looks, run_dir)``: self-supervised pairs from a folder of
photos and a folder of 3D LUTs (:mod:`dpst.data.look_pairs`), the weight-free objective of
:mod:`look_loss`, Adam with a warm-up and cosine decay. Photos and looks are split into
training and validation sets by file (a hash of the name); validation pairs are a fixed set
drawn from the held-out files, scored by PSNR and mean CIEDE2000 to their targets.

Run folder (as ``dpst train``'s): ``config.json``, ``config_history.jsonl``, ``last.pt``
(atomic, every ``checkpoint_every`` steps, on SIGTERM and Ctrl-C; the previous one kept as
``prev.pt``, :mod:`run_checkpoints`), ``metrics.jsonl``, ``tensorboard/``, ``summary.json``
(with the skipped files), ``credits.csv`` (the folders' ``PROVENANCE.csv`` rows, when they
have one). Running the same command again resumes exactly: sample ``i`` of the stream is a
pure function of the seed and ``i``. A resume with changed settings is refused unless
``reconfigure`` is given (:mod:`resume_settings`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpst.config import validated
from dpst.data.look_pairs import LookPairConfig
from dpst.errors import InputError
from dpst.imageio import write_json
from dpst.models.generator import GeneratorConfig
from dpst.train.look_loss import LookLossWeights
from dpst.train.resume_settings import check_resume, record_start
from dpst.train.run_checkpoints import Resumed, RunCheckpoints, RunStateError
from dpst.train.run_log import append_jsonl, drop_lines_after, image_grid

CREDITS_FILE, PROVENANCE_FILE = "credits.csv", "PROVENANCE.csv"
STATE_KIND = "dpst-look-train-state"


def shipped_model_config() -> GeneratorConfig:
    """The bundled model's network: narrower than the default, so that the two ONNX files and
    the weights stay under 3 MB together and a CPU can train it in an hour and a half."""
    return GeneratorConfig(encoder_widths=(16, 32, 48, 64), head_width=48)


@dataclass
class LookTrainConfig:
    """Every setting of ``dpst train-looks``; the defaults trained the bundled model."""

    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    clip_norm: float = 1.0
    seed: int = 0
    threads: int = 0  # CPU threads; 0: PyTorch's default
    device: str = "auto"
    photo_side: int = 256  # photos are held in memory at this long side
    validation_fraction: float = 0.1  # of photos and of looks, by file
    val_pairs: int = 48
    val_size: int = 192
    val_every: int = 250
    checkpoint_every: int = 100
    log_every: int = 10
    image_every: int = 250
    num_workers: int = 1  # DataLoader processes synthesising pairs
    model: GeneratorConfig = field(default_factory=shipped_model_config)
    pairs: LookPairConfig = field(default_factory=LookPairConfig)
    loss: LookLossWeights = field(default_factory=LookLossWeights)

    def validate(self) -> None:
        for name in ("steps", "batch_size", "lr", "val_size", "log_every", "photo_side"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("warmup_steps", "val_pairs", "val_every", "checkpoint_every",
                     "image_every", "num_workers", "threads", "clip_norm"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1)")
        self.pairs.validate()
        if self.pairs.num_labels > self.model.max_labels:
            raise ValueError("pairs.num_labels must not exceed model.max_labels")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict()
        return out


def lr_factor(step: int, config: LookTrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` (as ``dpst train``'s default)."""
    from dpst.train.config import warmup_decay

    return warmup_decay(step, config.steps, config.warmup_steps, config.min_lr_ratio)


def collate(samples: list[dict]) -> dict:
    return {
        key: torch.as_tensor([s[key] for s in samples])
        if key == "has_target"
        else torch.stack([s[key] for s in samples])
        for key in samples[0]
    }


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def masks_for(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        model.masks_from_labels(batch["content_labels"], batch["content"]),
        model.masks_from_labels(batch["style_labels"], batch["style"]),
    )


def train_step(model, batch: dict, config: LookTrainConfig, optimizer, scheduler):
    """One Adam step on a batch; returns ``(output, logs)``."""
    from dpst.optim_reference.matting import MattingLaplacian
    from dpst.train.look_loss import look_loss

    content_masks, style_masks = masks_for(model, batch)
    rendered = model(batch["content"], batch["style"], content_masks, style_masks,
                     return_details=True)  # fmt: skip
    matting = None
    if config.loss.photorealism:
        matting = MattingLaplacian.build(batch["content"], eps=config.loss.matting_eps)
    loss, logs = look_loss(rendered.output, rendered.overshoot, batch, config.loss,
                           config.model.max_labels, matting)  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    limit = config.clip_norm if config.clip_norm > 0 else math.inf
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))
    logs["lr"] = optimizer.param_groups[0]["lr"]
    logs["grad_norm"] = norm
    if math.isfinite(norm):
        optimizer.step()
    scheduler.step()
    return rendered.output.detach(), logs


def validate_batches(model, batches: list[dict]) -> dict[str, float]:
    """Mean PSNR (dB) and CIEDE2000 of the outputs to the targets, and the same for the
    content unchanged (what doing nothing scores)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ciede2000": [], "psnr_content": [],
                                      "ciede2000_content": []}  # fmt: skip
    with torch.no_grad():
        for batch in batches:
            masks = masks_for(model, batch)
            output = model(batch["content"], batch["style"], *masks)
            for name, image in (("", output), ("_content", batch["content"])):
                for got, want, has in zip(image, batch["target"], batch["has_target"],
                                          strict=True):  # fmt: skip
                    if not has:
                        continue
                    a = got.permute(1, 2, 0).cpu().double().numpy()
                    b = want.permute(1, 2, 0).cpu().double().numpy()
                    mse = max(float(np.mean((a - b) ** 2)), 1e-12)
                    scores["psnr" + name].append(10 * math.log10(1 / mse))
                    de = deltaE_ciede2000(rgb2lab(a), rgb2lab(b))
                    scores["ciede2000" + name].append(float(de.mean()))
    model.train()
    return {f"val/{k}": float(np.mean(v)) for k, v in scores.items() if v}


def train_looks(
    config: LookTrainConfig,
    photos: str | Path,
    looks: str | Path,
    run_dir: str | Path,
    *,
    stop_at: int | None = None,
    progress: bool = True,
    reconfigure: bool = False,
) -> dict[str, Any]:
    """Train (or resume) the generator; returns the summary written to ``RUN/summary.json``.

    Args:
        reconfigure: resume even when ``config`` changes settings of the checkpoint's
            (recorded in ``RUN/config_history.jsonl``); without it that is an InputError.

    Raises:
        InputError: bad settings, an empty photo or look folder, changed settings without
            ``reconfigure``, a checkpoint of another model config, no usable checkpoint.
    """
    from dpst.data.look_pairs import LookPairDataset, LookSampler
    from dpst.data.luts import LookLibrary
    from dpst.data.photo_pool import PhotoPool
    from dpst.train.stop_signal import StopSignal

    validated(config, "train-looks config")
    run_dir = Path(run_dir)
    checkpoints = look_checkpoints(run_dir)
    resumed = checkpoints.load()
    changes = {}
    if resumed is not None:
        changes = check_resume(run_dir, resumed.path, resumed.state.get("config"),
                               config.to_dict(), reconfigure)  # fmt: skip
    if config.threads:
        torch.set_num_threads(config.threads)
    # Denormal floats appear in the base's statistics and made CPU steps 1 s -> 6 s within
    # 30 steps (measured); flushing them to zero changes nothing at float32's resolution.
    torch.set_flush_denormal(True)
    t_start = time.perf_counter()
    pool = PhotoPool.from_folder(photos, config.photo_side)
    library = LookLibrary.from_folder(looks)
    train_pool, val_pool = pool.split(config.validation_fraction)
    train_looks_, val_looks = library.split(config.validation_fraction, config.seed)
    sampler = LookSampler(train_pool, train_looks_.luts, config.pairs)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)
    model, optimizer, scheduler, step = _model_and_optimiser(config, resumed, device)
    record_start(run_dir, step, config.to_dict(), changes)
    skipped = pool.problems + library.problems
    write_json(run_dir / "config.json", {
        "config": config.to_dict(),
        "photos": str(Path(photos).resolve()), "looks": str(Path(looks).resolve()),
        "train_photos": len(train_pool), "validation_photos": val_pool.names,
        "train_looks": len(train_looks_), "validation_looks": val_looks.names,
        "skipped_files": skipped, "resumed_from_step": step, "device": str(device),
        "reconfigured": changes,
    })  # fmt: skip
    for problem in skipped:
        print(f"skipped: {problem}", flush=True)
    write_credits(run_dir / CREDITS_FILE, {"photos": photos, "looks": looks})
    val_batches = _validation_batches(val_pool, val_looks, config, device)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step + 1)
    drop_lines_after(run_dir / "metrics.jsonl", step)
    dataset = LookPairDataset(sampler, config.seed, config.steps * config.batch_size)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(step * config.batch_size, len(dataset))),
        batch_size=config.batch_size,
        collate_fn=collate,
        num_workers=config.num_workers,
        worker_init_fn=_flush_denormals,
    )
    logs: dict[str, float] = {}
    val: dict[str, float] = {}
    interrupted = False
    t_log, since = time.perf_counter(), 0
    with StopSignal() as stop:
        for raw in loader:
            batch = _to_device(raw, device)
            output, logs = train_step(model, batch, config, optimizer, scheduler)
            step += 1
            since += 1
            if step % config.log_every == 0:
                seconds = (time.perf_counter() - t_log) / since
                t_log, since = time.perf_counter(), 0
                for key, value in logs.items():
                    writer.add_scalar(f"train/{key}", value, step)
                append_jsonl(run_dir / "metrics.jsonl", {"step": step, **logs})
                if progress:
                    print(f"step {step}/{config.steps}  loss {logs['loss']:.4f}  "
                          f"Lab L1 {logs['colour_l1_lab']:.4f}  stats {logs['statistics']:.5f}  "
                          f"lr {logs['lr']:.2e}  {seconds:.2f} s/step", flush=True)  # fmt: skip
            if config.image_every and step % config.image_every == 0:
                writer.add_image(
                    "train/content_style_output_target", image_grid(batch, output), step
                )
            if val_batches and config.val_every and step % config.val_every == 0:
                val = validate_batches(model, val_batches)
                for key, value in val.items():
                    writer.add_scalar(key, value, step)
                append_jsonl(run_dir / "metrics.jsonl", {"step": step, **val})
                if progress:
                    print("  ".join(f"{k} {v:.3f}" for k, v in val.items()), flush=True)
            done = step >= config.steps
            halt = stop.requested or (stop_at is not None and step >= stop_at)
            if done or halt or (config.checkpoint_every and step % config.checkpoint_every == 0):
                _save(checkpoints, model, optimizer, scheduler, step, config, finished=done)
            if halt or done:
                interrupted = stop.requested
                break
    writer.close()
    summary = {
        "steps": step, "finished": step >= config.steps, "interrupted": interrupted,
        "seconds": round(time.perf_counter() - t_start, 3), "last": logs, "validation": val,
        "skipped_files": skipped, "checkpoint": str(checkpoints.last),
        "resumed_from_step": resumed.state["step"] if resumed else 0, "reconfigured": changes,
    }  # fmt: skip
    write_json(run_dir / "summary.json", summary)
    return summary


def write_credits(path: Path, folders: dict[str, str | Path]) -> None:
    """Every training file's credit, from each folder's ``PROVENANCE.csv`` when it has one
    (``file, source_repository, source_path, licence, notes``): what a model card must carry."""
    import csv
    import io

    rows = []
    for name, folder in folders.items():
        provenance = Path(folder) / PROVENANCE_FILE
        if provenance.is_file():
            with open(provenance, newline="", encoding="utf-8") as fh:
                rows += [{"set": name, **row} for row in csv.DictReader(fh)]
    if not rows:
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    data = out.getvalue().encode()
    from dpst.imageio import atomic_write

    atomic_write(path, lambda fh: fh.write(data))


def _flush_denormals(_worker: int) -> None:
    torch.set_flush_denormal(True)


def _device(name: str) -> torch.device:
    from dpst.optim_reference.stylize import resolve_device

    return resolve_device(name)


def parse_look_state(path: Path, extra: Any) -> dict[str, Any]:
    """A look-training checkpoint's ``extra``, checked.

    Raises:
        RunStateError: no look-training state (``dpst train``'s, or an exported generator),
            or an incomplete one.
    """
    if not isinstance(extra, dict) or extra.get("kind") != STATE_KIND:
        raise RunStateError(f"{path} holds no look-training state (not written by "
                            f"dpst train-looks)")  # fmt: skip
    missing = [key for key in ("step", "optimizer", "scheduler") if key not in extra]
    if missing:
        raise RunStateError(f"{path} holds an incomplete look-training state (no "
                            f"{', '.join(missing)})")  # fmt: skip
    return extra


def look_checkpoints(run_dir: str | Path) -> RunCheckpoints[dict[str, Any]]:
    """``RUN/last.pt`` and ``RUN/prev.pt`` of a ``dpst train-looks`` run."""
    return RunCheckpoints(run_dir, parse_look_state)


def _model_and_optimiser(
    config: LookTrainConfig, resumed: Resumed[dict[str, Any]] | None, device: torch.device
):
    from dpst.models.generator import Generator

    torch.manual_seed(config.seed)
    model = Generator(config.model).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    step = 0
    if resumed is not None:
        if resumed.model.config != config.model:
            raise InputError(
                f"{resumed.path} holds a generator of another config ({resumed.model.config}); "
                f"its weights fit no other, so resume with its model settings or use another "
                f"--run-dir"
            )
        extra = resumed.state
        model.load_state_dict(resumed.model.state_dict())
        optimizer.load_state_dict(extra["optimizer"])
        scheduler.load_state_dict(extra["scheduler"])
        step = int(extra["step"])
    return model, optimizer, scheduler, step


def _save(checkpoints: RunCheckpoints, model, optimizer, scheduler, step, config, finished: bool):
    extra = {"kind": STATE_KIND, "step": step, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "config": config.to_dict(),
             "finished": finished}  # fmt: skip
    checkpoints.save(model, extra)


def _validation_batches(pool, library, config: LookTrainConfig, device) -> list[dict]:
    """A fixed set of held-out pairs (seeded apart from training), batched."""
    from dpst.data.look_pairs import LookSampler

    if not config.val_pairs or len(pool) == 0 or len(library) == 0:
        return []
    pairs = dataclasses.replace(config.pairs, size=config.val_size, unpaired_share=0.0)
    sampler = LookSampler(pool, library.luts, pairs)
    samples = [sampler.sample(-(i + 1) & 0x7FFFFFFF) for i in range(config.val_pairs)]
    size = config.batch_size
    return [_to_device(collate(samples[i : i + size]), device)
            for i in range(0, len(samples), size)]  # fmt: skip
