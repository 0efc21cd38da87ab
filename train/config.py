"""Settings of a generator training run: one dataclass, stored resolved in every run folder.

Layered as everywhere in dpst: these defaults, then ``--config FILE`` (a JSON object, or a
run's ``config.json``), then command-line flags (:mod:`dpst.commands.train`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from dpst.data.augment import AugmentConfig
from dpst.labels.policy import LabelPolicy
from dpst.models.generator import GeneratorConfig
from dpst.optim_reference.losses import LossWeights
from dpst.optim_reference.stylize import MattingConfig
from dpst.optim_reference.vgg import BackboneConfig

SCHEDULES = ("constant", "cosine", "linear")
AMP_DTYPES = ("bfloat16", "float16")


@dataclass
class TrainConfig:
    """Every setting of ``dpst train``.

    The loss of one batch is ``objective_weight * mean_b(J(G_b) / J(R_b)) +
    distill_weight * mean_{b with target} |G_b - T_b|_1``, where ``J`` is the optimiser's
    objective (:class:`~dpst.optim_reference.losses.Objective`, the paper's weights in
    ``weights``) and ``R_b`` the pair's target (the optimiser's output) when it has one, else
    its content. Dividing by ``J(R_b)`` (with ``normalize_objective``) makes the loss the very
    ratio ``dpst eval`` reports, and puts pairs of very different objective scale (the terms
    are sums over pixels or Gram entries) on one footing. With ``log_ratio`` the objective
    part is ``mean_b log(J(G_b) / J(R_b))`` instead: its gradient is ``grad J / J(G_b)``, so
    the pair or crop that is currently worst does not outweigh the others by its ratio.
    ``grid_smoothness`` adds ``mean_b roughness(grid_b)``: neighbouring affine maps alike.
    ``range_penalty`` adds ``mean_b overshoot(G_b)``, the mean squared distance of the output
    from [0, 1] before its clamp (:func:`~dpst.models.generator.range_overshoot`): the clamp
    is the generator's one non-affine step, and the matting term punishes where it cuts.
    """

    steps: int = 20_000
    batch_size: int = 4
    lr: float = 2e-4
    schedule: str = "cosine"  # constant | cosine | linear decay after the warm-up
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05  # the decayed schedule ends at lr * min_lr_ratio
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # max gradient norm; 0 disables clipping
    objective_weight: float = 1.0
    normalize_objective: bool = True
    log_ratio: bool = False  # the objective part as a mean log ratio (see above)
    grid_smoothness: float = 0.0  # weight of the grid's roughness (models.bilateral_grid)
    range_penalty: float = 1e5  # weight of the output's overshoot outside [0, 1] (see above)
    distill_weight: float = 10.0  # L1 to the optimiser's target, where the pair has one
    weights: LossWeights = field(default_factory=LossWeights)
    matting: MattingConfig = field(default_factory=MattingConfig)
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init_from: str | None = None  # a generator checkpoint whose weights start a new run
    val_pairs: int = 0  # held out from the training manifest (unless val_manifest is given)
    val_manifest: str | None = None
    val_every: int = 500  # steps; 0: never
    val_size: int = 256  # long side of validation images
    checkpoint_every: int = 500  # steps; 0: only at the end and on interruption
    log_every: int = 10  # scalars to TensorBoard and a progress line
    image_every: int = 200  # image grids to TensorBoard; 0: never
    check_files: bool = True  # decode every file of the manifest before training
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: each rank's GPU)
    amp: bool = True  # mixed precision, on CUDA only
    amp_dtype: str = "bfloat16"
    num_workers: int = 0  # DataLoader worker processes
    threads: int = 0  # CPU threads per process; 0: PyTorch's default

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        positive = {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        non_negative = {
            "warmup_steps": self.warmup_steps,
            "clip_norm": self.clip_norm,
            "objective_weight": self.objective_weight,
            "distill_weight": self.distill_weight,
            "grid_smoothness": self.grid_smoothness,
            "range_penalty": self.range_penalty,
            "val_pairs": self.val_pairs,
            "val_every": self.val_every,
            "checkpoint_every": self.checkpoint_every,
            "image_every": self.image_every,
            "num_workers": self.num_workers,
            "threads": self.threads,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.log_every < 1 or self.val_size < 16:
            raise ValueError("log_every must be >= 1 and val_size >= 16")
        if self.objective_weight == 0 and self.distill_weight == 0:
            raise ValueError("objective_weight and distill_weight are both 0: nothing to learn")
        self.augment.validate()
        self.labels.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists); :func:`dpst.config.update_dataclass` reads it back."""
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict()
        return out


def lr_factor(step: int, config) -> float:
    """Multiplier of ``config.lr`` at optimiser step ``step``: :func:`warmup_decay` with the
    run's settings (a training config of either trainer: ``steps``, ``warmup_steps``,
    ``min_lr_ratio``, and ``schedule`` where it has one, else cosine)."""
    schedule = getattr(config, "schedule", "cosine")
    return warmup_decay(step, config.steps, config.warmup_steps, config.min_lr_ratio, schedule)


def warmup_decay(
    step: int, steps: int, warmup_steps: int, min_lr_ratio: float, schedule: str = "cosine"
) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based) of ``steps``: linear
    warm-up from ``1 / warmup_steps``, then constant, cosine or linear decay to
    ``min_lr_ratio``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "cosine":
        shape = 0.5 * (1 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    return min_lr_ratio + (1 - min_lr_ratio) * shape
