"""L-BFGS over the output image, and the paper's stage schedules.

Published scripts: L-BFGS, 1000 iterations per stage, one function evaluation per iteration
(no line search), no early stop. Stage 1 optimises the segmented neural-style objective
without the photorealism term from a near-mean start; stage 2 adds the photorealism term
(lambda = 1e4) and starts from stage 1's result as stage 1 saved it: an 8-bit PNG, so
clipped to [0, 1] and quantised (:func:`as_saved_png`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from dpst.constants import CAFFE_MEAN_BGR, CAFFE_PIXEL_SCALE
from dpst.optim_reference.losses import LossWeights, Objective, as_floats

# The published init (neuralstyle_seg.lua): torch.randn * 1e-4 in the network's input space
# (mean-subtracted, 0-256 scale there), i.e. the mean pixel plus noise of std 1e-4 input
# units. Our input is x * 255 - mean, so the same std in input units is 1e-4 / 255 in [0, 1].
CAFFE_MEAN_RGB = tuple(v / CAFFE_PIXEL_SCALE for v in reversed(CAFFE_MEAN_BGR))
INIT_NOISE_STD = 1e-4 / CAFFE_PIXEL_SCALE
# Levels of the 8-bit PNG through which the published stage 2 receives stage 1's result.
PNG_LEVELS = 255
# L-BFGS memory of Torch's optim.lbfgs (nCorrection), which the published scripts used.
LBFGS_HISTORY = 100


@dataclass
class IterationEvent:
    """What a progress callback receives after each iteration."""

    level: int  # multi-scale level, 0 = the working size
    stage: int  # 1 or 2
    iteration: int  # 1-based, within the stage
    total: int  # iterations planned for the stage
    terms: dict[str, float]  # weighted terms at the iterate just evaluated
    image: Callable[[], torch.Tensor]  # the current iterate, (B,3,H,W), on request


@dataclass
class StageResult:
    """How one L-BFGS stage went."""

    image: torch.Tensor
    start: dict[str, float]
    end: dict[str, float]
    iterations: int
    status: str  # "completed" | "non-finite" | "interrupted" | "cancelled"
    seconds: float


def _finite(terms: dict[str, torch.Tensor]) -> bool:
    return all(math.isfinite(float(v.detach().sum())) for v in terms.values())


def run_lbfgs(
    objective: Objective,
    init: torch.Tensor,
    iterations: int,
    weights: LossWeights,
    *,
    history_size: int = LBFGS_HISTORY,
    on_iteration: Callable[[int, dict[str, float], torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StageResult:
    """Minimise ``objective`` over the image with L-BFGS, one evaluation per iteration.

    Args:
        objective: returns the dict of terms for an image (see :class:`Objective`).
        init: ``(B, 3, H, W)`` starting image; not modified.
        iterations: number of L-BFGS iterations (each one objective evaluation).
        weights: the term weights for this stage.
        on_iteration: called as ``(iteration, terms, image)`` after each evaluation.
        should_stop: polled after each iteration; returning True ends the stage
            ("cancelled").

    Returns:
        The last iterate whose objective was finite, with the terms at the start and end.
        A non-finite objective stops the stage; Ctrl-C (KeyboardInterrupt) stops it too,
        with status "interrupted", and the caller decides whether to re-raise.
    """
    started = time.perf_counter()
    # L-BFGS flattens the gradient with view(): the iterate must be contiguous.
    x = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=1,
        history_size=history_size,
        tolerance_grad=-1.0,  # never stop early, as the published runs
        tolerance_change=0.0,
        line_search_fn=None,
    )
    evaluated: dict[str, dict[str, torch.Tensor]] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = objective(x, weights)
        total = terms["total"].sum()
        total.backward()
        evaluated["terms"] = {k: v.detach() for k, v in terms.items()}
        return total

    start_terms: dict[str, float] | None = None
    last_good, last_terms = x.detach().clone(), None
    status, done = "completed", 0
    try:
        for it in range(1, iterations + 1):
            current = x.detach().clone()
            opt.step(closure)
            terms = evaluated["terms"]
            if not _finite(terms):
                status = "non-finite"
                break
            last_good, last_terms = current, as_floats(terms)
            if start_terms is None:
                start_terms = last_terms
            done = it
            if on_iteration is not None:
                on_iteration(it, last_terms, current)
            if should_stop is not None and should_stop():
                status = "cancelled"
                break
        else:
            # The step after the last evaluation has not been evaluated yet.
            with torch.no_grad():
                terms = objective(x, weights)
            if _finite(terms):
                last_good, last_terms = x.detach().clone(), as_floats(terms)
            else:
                status = "non-finite"
    except KeyboardInterrupt:
        status = "interrupted"
    if last_terms is None:
        with torch.no_grad():
            last_terms = as_floats(objective(last_good, weights))
        start_terms = last_terms
    return StageResult(
        image=last_good,
        start=start_terms or last_terms,
        end=last_terms,
        iterations=done,
        status=status,
        seconds=time.perf_counter() - started,
    )


def mean_init(shape: tuple[int, ...], seed: int, device, dtype=torch.float32) -> torch.Tensor:
    """The published stage-1 start: the Caffe mean colour plus tiny seeded noise."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(shape, generator=gen, dtype=torch.float64) * INIT_NOISE_STD
    mean = torch.tensor(CAFFE_MEAN_RGB, dtype=torch.float64).view(1, 3, 1, 1)
    return (mean + noise).to(device=device, dtype=dtype)


def as_saved_png(image: torch.Tensor) -> torch.Tensor:
    """``image`` as the published scripts hand it from stage 1 to stage 2 (a new tensor).

    Stage 1 saves its result with Torch's ``image.save``: clipped to [0, 1], times 255,
    converted to bytes by a C cast (truncation, not rounding); stage 2 loads that PNG
    (``k / 255``). Float64 keeps ``floor`` exact at the levels themselves.
    """
    levels = torch.floor(image.detach().double().clamp(0.0, 1.0) * PNG_LEVELS)
    return (levels / PNG_LEVELS).to(image.dtype)


def stage_weights(base: LossWeights, stage: int) -> LossWeights:
    """Stage 1 leaves the photorealism term out; stage 2 uses the full objective."""
    return replace(base, photorealism=0.0) if stage == 1 else base
