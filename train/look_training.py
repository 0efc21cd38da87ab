"""Training the one-pass generator on looks, without any pretrained network.

``train_looks(config, photos, looks, run_dir)``: self-supervised pairs from a folder of
photos and a folder of 3D LUTs (:mod:`dpst.data.look_pairs`), the weight-free objective of
:mod:`look_loss`, Adam with a warm-up and cosine decay. Photos and looks are split into
training and validation sets by file (a hash of the name); validation pairs are a fixed set
drawn from the held-out files, scored by PSNR and mean CIEDE2000 to their targets.

Run folder (as ``dpst train``'s, both loops being :mod:`skeleton`'s): ``config.json``,
``config_history.jsonl``, ``last.pt`` (atomic, every ``checkpoint_every`` steps, on SIGTERM and
Ctrl-C; the previous one kept as ``prev.pt``, :mod:`run_checkpoints`), ``metrics.jsonl``,
``tensorboard/``, ``summary.json`` (with the skipped files), ``credits.csv`` (the folders'
``PROVENANCE.csv`` rows, when they have one). Running the same command again resumes exactly:
sample ``i`` of the stream is a pure function of the seed and ``i``. A resume with changed
settings is refused unless ``reconfigure`` is given (:mod:`resume_settings`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from dpst.config import validated
from dpst.data.look_pairs import LookPairConfig, LookPairDataset, LookSampler
from dpst.data.luts import LookLibrary
from dpst.data.photo_pool import PhotoPool
from dpst.devices import resolve_device
from dpst.imageio import atomic_write, write_json
from dpst.models.generator import Generator, GeneratorConfig
from dpst.optim_reference.matting import MattingLaplacian
from dpst.train.config import lr_factor
from dpst.train.look_loss import LookLossWeights, look_loss
from dpst.train.run_checkpoints import Resumed, RunCheckpoints, RunStateError
from dpst.train.skeleton import (
    SUMMARY_FILE,
    ProgressLine,
    RunLog,
    Validate,
    resume,
    run_steps,
)

CREDITS_FILE, PROVENANCE_FILE = "credits.csv", "PROVENANCE.csv"
STATE_KIND = "dpst-look-train-state"
# The numbers worth watching besides the loss: the colour error to the target (Lab L1) and
# the regions' colour statistics; the validation scores get a line of their own.
PROGRESS = ProgressLine(
    (("Lab L1", "colour_l1_lab", ".4f"), ("stats", "statistics", ".5f")), validation=True
)


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
        stop_at: stop after this many steps in total (a checkpoint is written), as an
            interruption would; ``None`` runs to ``config.steps``.
        reconfigure: resume even when ``config`` changes settings of the checkpoint's
            (recorded in ``RUN/config_history.jsonl``); without it that is an InputError.

    Raises:
        InputError: bad settings, an empty photo or look folder, changed settings without
            ``reconfigure``, a checkpoint of another model config, no usable checkpoint.
    """
    validated(config, "train-looks config")
    run_dir = Path(run_dir)
    checkpoints = look_checkpoints(run_dir)
    resumed, changes = resume(checkpoints, config, reconfigure, lambda state: state.get("config"))
    _set_threads(config)
    t_start = time.perf_counter()
    data = _LookData.read(photos, looks, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    learner = _Learner.start(config, resumed, device, checkpoints)
    resumed_from = learner.step
    header = _header(config, data, resumed_from, device, changes)
    log = RunLog(run_dir, config, header, PROGRESS, progress=progress,
                 validate=learner.validation(data))  # fmt: skip
    for problem in data.skipped:
        print(f"skipped: {problem}", flush=True)
    write_credits(run_dir / CREDITS_FILE, {"photos": photos, "looks": looks})
    outcome = run_steps(
        config, resumed_from, iter(_loader(data.sampler, config, resumed_from)), learner.take_step,
        learner.save, log, stop_at=stop_at,
    )  # fmt: skip
    log.close()
    summary = {
        "steps": outcome.step, "finished": outcome.step >= config.steps,
        "interrupted": outcome.interrupted, "seconds": round(time.perf_counter() - t_start, 3),
        "last": outcome.logs, "validation": log.val_scalars, "skipped_files": data.skipped,
        "checkpoint": str(checkpoints.last), "resumed_from_step": resumed_from,
        "reconfigured": changes,
    }  # fmt: skip
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def _set_threads(config: LookTrainConfig) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)
    # Denormal floats appear in the base's statistics and made CPU steps 1 s -> 6 s within
    # 30 steps (measured); flushing them to zero changes nothing at float32's resolution.
    torch.set_flush_denormal(True)


@dataclass
class _LookData:
    """A run's photos and looks, split by file into training and validation (unreadable files
    skipped and listed), and the training pairs' sampler."""

    photos: Path
    looks: Path
    pool: PhotoPool
    library: LookLibrary
    train_pool: PhotoPool
    val_pool: PhotoPool
    train_looks: LookLibrary
    val_looks: LookLibrary
    sampler: LookSampler

    @classmethod
    def read(cls, photos: str | Path, looks: str | Path, config: LookTrainConfig) -> _LookData:
        """Raises InputError (a missing folder, one without a readable file) before the run
        folder is touched."""
        pool = PhotoPool.from_folder(photos, config.photo_side)
        library = LookLibrary.from_folder(looks)
        train_pool, val_pool = pool.split(config.validation_fraction)
        train_looks, val_looks = library.split(config.validation_fraction, config.seed)
        sampler = LookSampler(train_pool, train_looks.luts, config.pairs)
        return cls(Path(photos), Path(looks), pool, library, train_pool, val_pool, train_looks,
                   val_looks, sampler)  # fmt: skip

    @property
    def skipped(self) -> list[str]:
        return self.pool.problems + self.library.problems


def _header(config: LookTrainConfig, data: _LookData, resumed_from: int, device: torch.device,
            changes: dict[str, list]) -> dict[str, Any]:  # fmt: skip
    """``config.json``: what this start ran with and on (the files held out by name)."""
    return {
        "config": config.to_dict(),
        "photos": str(data.photos.resolve()), "looks": str(data.looks.resolve()),
        "train_photos": len(data.train_pool), "validation_photos": data.val_pool.names,
        "train_looks": len(data.train_looks), "validation_looks": data.val_looks.names,
        "skipped_files": data.skipped, "resumed_from_step": resumed_from, "device": str(device),
        "reconfigured": changes,
    }  # fmt: skip


def _loader(sampler: LookSampler, config: LookTrainConfig, step: int):
    """The batches from step ``step`` on: sample ``i`` of the stream is a pure function of the
    seed and ``i``, so a resume goes on with exactly the batches an uninterrupted run takes."""
    dataset = LookPairDataset(sampler, config.seed, config.steps * config.batch_size)
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(step * config.batch_size, len(dataset))),
        batch_size=config.batch_size,
        collate_fn=collate,
        num_workers=config.num_workers,
        worker_init_fn=_flush_denormals,
    )


def write_credits(path: Path, folders: dict[str, str | Path]) -> None:
    """Every training file's credit, from each folder's ``PROVENANCE.csv`` when it has one
    (``file, source_repository, source_path, licence, notes``): what a model card must carry."""
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
    atomic_write(path, lambda fh: fh.write(data))


def _flush_denormals(_worker: int) -> None:
    torch.set_flush_denormal(True)


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


@dataclass
class _Learner:
    """The generator with its optimiser and schedule: what the steps change and a
    checkpoint keeps."""

    model: Generator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    config: LookTrainConfig
    device: torch.device
    checkpoints: RunCheckpoints
    step: int  # optimiser steps taken when this start began

    @classmethod
    def start(cls, config: LookTrainConfig, resumed: Resumed[dict[str, Any]] | None,
              device: torch.device, checkpoints: RunCheckpoints) -> _Learner:  # fmt: skip
        """Seeded and new, or as ``resumed`` left it."""
        torch.manual_seed(config.seed)
        model = Generator(config.model).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), config.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
        step = 0
        if resumed is not None:
            extra = resumed.state
            model.load_state_dict(resumed.model.state_dict())
            optimizer.load_state_dict(extra["optimizer"])
            scheduler.load_state_dict(extra["scheduler"])
            step = int(extra["step"])
        return cls(model, optimizer, scheduler, config, device, checkpoints, step)

    def take_step(self, step: int, raw: dict) -> tuple[dict, torch.Tensor, dict[str, float]]:
        batch = _to_device(raw, self.device)
        output, logs = train_step(self.model, batch, self.config, self.optimizer, self.scheduler)
        return batch, output, logs

    def save(self, step: int, finished: bool, interrupted: bool) -> None:
        """The weights, optimiser and schedule at ``step`` (a look run's checkpoint records
        whether it finished, not why it stopped)."""
        extra = {"kind": STATE_KIND, "step": step, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "config": self.config.to_dict(),
                 "finished": finished}  # fmt: skip
        self.checkpoints.save(self.model, extra)

    def validation(self, data: _LookData) -> Validate | None:
        """The run log's validation over a fixed set of held-out pairs; None without any."""
        batches = _validation_batches(data.val_pool, data.val_looks, self.config, self.device)
        if not batches:
            return None
        return lambda: (validate_batches(self.model, batches), [])


def _validation_batches(pool, library, config: LookTrainConfig, device) -> list[dict]:
    """A fixed set of held-out pairs (seeded apart from training), batched."""
    if not config.val_pairs or len(pool) == 0 or len(library) == 0:
        return []
    pairs = dataclasses.replace(config.pairs, size=config.val_size, unpaired_share=0.0)
    sampler = LookSampler(pool, library.luts, pairs)
    samples = [sampler.sample(-(i + 1) & 0x7FFFFFFF) for i in range(config.val_pairs)]
    size = config.batch_size
    return [_to_device(collate(samples[i : i + size]), device)
            for i in range(0, len(samples), size)]  # fmt: skip
