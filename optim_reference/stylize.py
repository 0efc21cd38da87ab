"""``stylize()``: the paper's method end to end, as one function a notebook can call.

images (+ label maps) -> working size -> labels made consistent (orphans; tiny regions only
when asked) -> objective built once per level -> L-BFGS stage 1 -> stage 2 with the
photorealism term, started from stage 1's result clipped and quantised to 8 bits as the
published scripts pass it on -> post-filter fitted to the unclamped optimiser output at the
working size (as published) and applied to the full-resolution content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from dpst import __version__
from dpst.devices import resolve_device
from dpst.imageio import from_tensor, to_tensor
from dpst.labels.policy import LabelPolicy, apply_label_policy
from dpst.optim_reference.losses import LossWeights, Objective
from dpst.optim_reference.masks import one_hot_masks
from dpst.optim_reference.matting import MattingLaplacian
from dpst.optim_reference.optimize import (
    LBFGS_HISTORY,
    IterationEvent,
    StageResult,
    as_saved_png,
    mean_init,
    run_lbfgs,
    stage_weights,
)
from dpst.optim_reference.postfilter import (
    PostFilterConfig,
    fit_local_affine,
    smooth_local_affine,
    upsample_apply,
)
from dpst.optim_reference.vgg import BackboneConfig, load_backbone

# The coarsest multi-scale level keeps at least this many pixels on its long side, so that
# relu5_1 (1/16 of the input) still has a few positions.
MIN_LEVEL_SIDE = 48
# Multi-scale iterations at the finer levels, as shares of ``iters`` (see
# multiscale_schedule); set with bench/optimizer.py so that the schedule costs under 30% of
# the single-scale one.
MULTISCALE_FINEST_SHARE = 0.25
MULTISCALE_MIDDLE_SHARE = 0.4


@dataclass
class MattingConfig:
    """The photorealism term's matting Laplacian (Levin et al. 2008)."""

    radius: int = 1  # 3x3 windows
    eps: float = 1e-7
    method: str = "auto"  # "auto" | "sparse" | "matrix_free"


@dataclass
class StylizeConfig:
    """Every setting of a reference-optimiser run; the paper's values by default."""

    size: int = 700  # long side of the working resolution (never upscaled)
    iters: int = 1000  # L-BFGS iterations per stage
    stages: int = 2  # 1: segmented neural style only; 2: + photorealism stage
    multiscale: bool = False
    levels: int = 3  # multi-scale pyramid levels, factor 2 apart
    postfilter: bool = True
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    snapshot_every: int = 0  # 0: no snapshots
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    history_size: int = LBFGS_HISTORY
    weights: LossWeights = field(default_factory=LossWeights)
    matting: MattingConfig = field(default_factory=MattingConfig)
    post: PostFilterConfig = field(default_factory=PostFilterConfig)

    def validate(self) -> None:
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if self.iters < 0:
            raise ValueError(f"iters must be >= 0, got {self.iters}")
        if self.stages not in (1, 2):
            raise ValueError(f"stages must be 1 or 2, got {self.stages}")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        self.labels.validate()


@dataclass
class StylizeResult:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1], the content's full resolution
    working_image: np.ndarray  # the optimiser's output at the working size, before filtering
    report: dict


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of an image in [0, 1], clamped: the antialiasing filter
    overshoots 1 by float rounding (1.0000001 measured), which the matting build rejects."""
    if tuple(image.shape[-2:]) == size:
        return image
    resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp_(0.0, 1.0)


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer label map (labels are never interpolated)."""
    t = torch.from_numpy(labels.astype(np.int64))[None, None].double()
    return F.interpolate(t, size=size, mode="nearest").long()[0, 0].numpy()


def _fit_long_side(shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    h, w = shape
    scale = min(1.0, long_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def affine_upsample(
    content_low: torch.Tensor, image_low: torch.Tensor, content_high: torch.Tensor
) -> torch.Tensor:
    """Carry a coarse result to a finer level as local affine maps of the content.

    Fitting ``image_low`` as a locally affine function of ``content_low`` and applying the
    maps to ``content_high`` keeps the content's fine edges, where bilinear upsampling would
    blur them and so start the finer level with a high photorealism energy.
    """
    coeffs = fit_local_affine(content_low, image_low.clamp(0, 1))
    return upsample_apply(coeffs, content_low, content_high)


def level_size(size: tuple[int, int], level: int) -> tuple[int, int]:
    """Size of multi-scale level ``level`` (0 = ``size`` itself, each level half the last)."""
    return max(1, round(size[0] / 2**level)), max(1, round(size[1] / 2**level))


def multiscale_schedule(cfg: StylizeConfig, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """``(level, stage, iterations)`` in run order; level 0 is the working size.

    Single scale: the published ``stages x iters`` at level 0. Multi-scale: both stages at
    the coarsest level (cheap: 1/4^level of the pixels), then only the full objective at
    each finer level, starting from the carried-over result, for ``iters`` times
    ``MULTISCALE_FINEST_SHARE`` iterations at the working size and
    ``MULTISCALE_MIDDLE_SHARE`` at the levels between.
    """
    if not cfg.multiscale:
        return [(0, s, cfg.iters) for s in range(3 - cfg.stages, 3)]
    levels = 1
    while levels < cfg.levels and max(size) / 2**levels >= MIN_LEVEL_SIDE:
        levels += 1
    coarsest = levels - 1
    plan = [(coarsest, s, cfg.iters) for s in range(3 - cfg.stages, 3)]
    for level in range(coarsest - 1, -1, -1):
        share = MULTISCALE_FINEST_SHARE if level == 0 else MULTISCALE_MIDDLE_SHARE
        plan.append((level, 2 if cfg.stages == 2 else 1, max(1, round(cfg.iters * share))))
    return plan


def consistent_labels(
    content_labels: np.ndarray | None,
    style_labels: np.ndarray | None,
    content: np.ndarray,
    style: np.ndarray,
    policy: LabelPolicy,
    relation=None,
) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    """Make the two label maps consistent: orphans remapped, tiny regions merged if asked.

    Returns the new maps (``None`` for one region) and a JSON-ready report of what changed.
    """
    if content_labels is None and style_labels is None:
        return None, None, {"label_ids": [0], "one_region": True}
    if content_labels is None or style_labels is None:
        raise ValueError("give masks for both the content and the style, or for neither")
    content_labels, style_labels, info = apply_label_policy(
        content_labels, style_labels, content, style, policy, relation
    )
    info = {
        k: ({str(a): int(b) for a, b in v.items()} if isinstance(v, dict) else v)
        for k, v in info.items()
    }
    if not info["label_ids"]:
        raise ValueError("the content mask labels no pixel (every pixel matches no label)")
    return content_labels, style_labels, info


@dataclass
class _Working:
    """The run's images on its device: the full-resolution content, both at working size."""

    content_full: torch.Tensor  # (1, 3, H, W)
    content: torch.Tensor  # (1, 3, h, w), h x w = ``hw``
    style: torch.Tensor  # (1, 3, hs, ws), hs x ws = ``style_hw``
    hw: tuple[int, int]
    style_hw: tuple[int, int]


@dataclass
class _Labels:
    """The label maps at working size after the label policy (None: one region)."""

    content: np.ndarray | None
    style: np.ndarray | None
    info: dict


@dataclass
class _Optimised:
    """The L-BFGS schedule's outcome: the last iterate (unclamped) and what each stage did."""

    image: torch.Tensor
    stages: list[dict]
    interrupted: bool
    cancelled: bool
    steps: int  # iterations run in all (TensorBoard's step axis)


def planned_iterations(cfg: StylizeConfig, content_shape: tuple[int, ...]) -> int:
    """Iterations the schedule plans for a content photo of this shape: a progress total."""
    work_hw = _fit_long_side(tuple(content_shape[:2]), cfg.size)
    return sum(n for _, _, n in multiscale_schedule(cfg, work_hw))


def _working_images(
    content: np.ndarray, style: np.ndarray, cfg: StylizeConfig, device: torch.device
) -> _Working:
    work_hw = _fit_long_side(content.shape[:2], cfg.size)
    style_hw = _fit_long_side(style.shape[:2], cfg.size)
    content_full = to_tensor(content).to(device)
    content_work = _resize(content_full, work_hw)
    style_work = _resize(to_tensor(style).to(device), style_hw)
    return _Working(content_full, content_work, style_work, work_hw, style_hw)


def _working_labels(
    content_labels: np.ndarray | None,
    style_labels: np.ndarray | None,
    work: _Working,
    policy: LabelPolicy,
    relation: Mapping[int, Sequence[int]] | None = None,
) -> _Labels:
    """The maps resized to the working sizes, then made consistent there (the policy sees
    what the optimiser sees)."""
    if content_labels is not None:
        content_labels = _resize_labels(content_labels, work.hw)
    if style_labels is not None:
        style_labels = _resize_labels(style_labels, work.style_hw)
    return _Labels(
        *consistent_labels(
            content_labels,
            style_labels,
            from_tensor(work.content),
            from_tensor(work.style),
            policy,
            relation,
        )
    )


def _level_objective(
    net: torch.nn.Module, work: _Working, labels: _Labels, level: int, cfg: StylizeConfig
) -> Objective:
    """The objective at multi-scale ``level``: images, masks and the matting Laplacian there."""
    hw, shw = level_size(work.hw, level), level_size(work.style_hw, level)
    c = _resize(work.content, hw)
    s = _resize(work.style, shw)
    cm = sm = None
    if labels.content is not None:
        ids = labels.info["label_ids"]
        cm = one_hot_masks(torch.from_numpy(_resize_labels(labels.content, hw))[None], ids)
        sm = one_hot_masks(torch.from_numpy(_resize_labels(labels.style, shw))[None], ids)
        cm, sm = cm.to(c.device), sm.to(c.device)
    matting = None
    if cfg.stages == 2 and cfg.weights.photorealism:
        m = cfg.matting
        matting = MattingLaplacian.build(c, radius=m.radius, eps=m.eps, method=m.method)
    return Objective(net, c, s, cm, sm, cfg.weights, matting)


def _start_image(
    image: torch.Tensor | None,
    previous_stage: int,
    level: int,
    stage: int,
    work: _Working,
    cfg: StylizeConfig,
) -> torch.Tensor:
    """Where a stage starts: the mean colour; the previous stage's result (as the published
    stage 2 reads it back, from an 8-bit PNG); or a coarser level's result carried up."""
    hw = level_size(work.hw, level)
    if image is None:
        return mean_init((1, 3, *hw), cfg.seed, work.content.device)
    if tuple(image.shape[-2:]) == hw:
        return as_saved_png(image) if (previous_stage, stage) == (1, 2) else image
    coarse = _resize(work.content, tuple(image.shape[-2:]))
    return affine_upsample(coarse, image, _resize(work.content, hw))


def _stage_record(level: int, stage: int, planned: int, result: StageResult) -> dict:
    return {
        "level": level,
        "size": list(result.image.shape[-2:]),
        "stage": stage,
        "iterations": result.iterations,
        "planned_iterations": planned,
        "status": result.status,
        "seconds": round(result.seconds, 3),
        "start": result.start,
        "end": result.end,
    }


def _optimise(
    net: torch.nn.Module,
    work: _Working,
    labels: _Labels,
    cfg: StylizeConfig,
    writer,
    callback: Callable[[IterationEvent], None] | None,
    should_stop: Callable[[], bool] | None,
) -> _Optimised:
    """Every (level, stage) of the schedule in order, each objective built once per level."""
    objective: tuple[int, Objective] | None = None  # one level at a time bounds the memory
    image: torch.Tensor | None = None
    stages: list[dict] = []
    previous_stage = 0
    step = 0

    def on_iteration(it, terms, current, level, stage, iters) -> None:
        nonlocal step
        step += 1
        if writer is not None:
            for k, v in terms.items():
                writer.add_scalar(f"loss/{k}", v, step)
            if cfg.snapshot_every and it % cfg.snapshot_every == 0:
                writer.add_image("output", current[0].clamp(0, 1), step)
        if callback is not None:
            callback(IterationEvent(level, stage, it, iters, terms, lambda: current))

    for level, stage, iters in multiscale_schedule(cfg, work.hw):
        if objective is None or objective[0] != level:
            objective = None
            objective = (level, _level_objective(net, work, labels, level, cfg))
        init = _start_image(image, previous_stage, level, stage, work, cfg)
        result: StageResult = run_lbfgs(
            objective[1],
            init,
            iters,
            stage_weights(cfg.weights, stage),
            history_size=cfg.history_size,
            on_iteration=partial(on_iteration, level=level, stage=stage, iters=iters),
            should_stop=should_stop,
        )
        image, previous_stage = result.image, stage
        stages.append(_stage_record(level, stage, iters, result))
        if result.status in ("interrupted", "cancelled"):
            break
    assert image is not None
    statuses = {record["status"] for record in stages}
    return _Optimised(image, stages, "interrupted" in statuses, "cancelled" in statuses, step)


def _post_filter(image: torch.Tensor, work: _Working, cfg: StylizeConfig):
    """``(final, working)``: the post-filtered output at full resolution (or the clamped
    working image without the post-filter), and the clamped working image."""
    if tuple(image.shape[-2:]) != work.hw:
        image = _resize(image, work.hw)
    working = image.clamp(0, 1)
    if not cfg.postfilter:
        return working, working
    # Fitted to the unclamped output, as the published SmoothLocalAffine call is: where the
    # optimiser overshoots [0, 1], the maps keep its slope; the result is clamped.
    final = smooth_local_affine(work.content, image, cfg.post, full_res_content=work.content_full)
    return final, working


def stylize(
    content: np.ndarray,
    style: np.ndarray,
    content_labels: np.ndarray | None = None,
    style_labels: np.ndarray | None = None,
    config: StylizeConfig | None = None,
    backbone: BackboneConfig | None = None,
    *,
    callback: Callable[[IterationEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    tensorboard_dir: str | None = None,
    network: tuple[torch.nn.Module, dict] | None = None,
    relation: Mapping[int, Sequence[int]] | None = None,
) -> StylizeResult:
    """Deep Photo Style Transfer of ``style``'s look onto ``content``.

    Args:
        content, style: float32 ``(H, W, 3)`` RGB in [0, 1], any sizes.
        content_labels, style_labels: integer ``(H, W)`` label maps at (or resized to) their
            image's size, -1 for unlabelled pixels; both or neither (one region).
        config: run settings (:class:`StylizeConfig`).
        backbone: which VGG-19 weights (:class:`BackboneConfig`).
        callback: receives an :class:`IterationEvent` after every iteration.
        should_stop: polled after every iteration; True cancels the run, keeping the
            current result.
        tensorboard_dir: write per-term scalars and snapshots there.
        network: an already loaded ``(backbone, identity)`` from :func:`load_backbone`, to
            reuse across calls (``backbone`` is then ignored).
        relation: label -> related labels, tried before colour for a content label the
            style lacks (the segmenter's groups: sky goes to water), or None.

    Returns:
        The output at the content's full resolution (when post-filtered; else at the working
        size), the optimiser's working-size output, and a JSON-ready report. Ctrl-C stops
        the run and returns what it has, with ``report["interrupted"] = True``.
    """
    cfg = config or StylizeConfig()
    cfg.validate()
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    work = _working_images(content, style, cfg, device)
    labels = _working_labels(content_labels, style_labels, work, cfg.labels, relation)
    if network is not None:
        net, identity = network[0].to(device), network[1]
    else:
        net, identity = load_backbone(backbone or BackboneConfig(), device)
    writer = None
    if tensorboard_dir:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(tensorboard_dir)
    run = _optimise(net, work, labels, cfg, writer, callback, should_stop)
    t_post = time.perf_counter()
    final, working = _post_filter(run.image, work, cfg)
    post_seconds = time.perf_counter() - t_post
    if writer is not None:
        writer.add_image("final", final[0].clamp(0, 1), run.steps)
        writer.close()
    report = {
        "dpst_version": __version__,
        "method": "reference optimiser (Deep Photo Style Transfer)",
        "config": asdict(cfg),
        "backbone": identity,
        "device": str(device),
        "sizes": {
            "content": list(content.shape[:2]),
            "style": list(style.shape[:2]),
            "working": list(work.hw),
            "style_working": list(work.style_hw),
            "output": list(final.shape[-2:]),
        },
        "labels": labels.info,
        "stages": run.stages,
        "postfilter": {"applied": cfg.postfilter, "seconds": round(post_seconds, 3)},
        "seconds": round(time.perf_counter() - t_start, 3),
        "interrupted": run.interrupted,
        "cancelled": run.cancelled,
    }
    return StylizeResult(from_tensor(final), from_tensor(working), report)
