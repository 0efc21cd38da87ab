"""What one demo server offers and allows: :class:`AppConfig`, built by ``dpst serve``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

MASK_MODES = ("none", "automatic", "upload", "paint")
# Peak memory of one job per pixel of its photo, measured on the demo's engine with a 12 MP
# photo (DemoEngine.run_fast / run_quality in a fresh process, ru_maxrss over the loaded
# engine; 2026-12-02): Fast 32 B/px (the content read as float, the 8-bit result, the banded
# renderer), Quality 79 B/px (the post-filter at full resolution); plus an allowance, not
# measured, of 8 B/px for Gradio's own 8-bit copies of the images it shows and offers.
FAST_BYTES_PER_PIXEL = 40
QUALITY_BYTES_PER_PIXEL = 90
# Without --memory-budget the server plans to use at most this share of the machine's memory.
DEFAULT_MEMORY_SHARE = 0.5
# Whatever the budget allows, no photo over this (a 100 MP medium-format frame).
PIXEL_CEILING = 100_000_000
BACKBONES = ("vgg19", "random")


@dataclass(frozen=True)
class AppConfig:
    """What one demo server offers and allows.

    ``model_path`` None means no fast model (Quality mode only). ``backbone`` ``"random"``
    stands a seeded random network in for VGG-19 (tests, offline smoke runs; the page says
    so); ``"vgg19"`` fetches the Caffe VGG-19 when the server starts if it is missing (unless
    offline), never from a request.
    ``segmenter`` None turns automatic masks off.
    """

    model_path: str | None = None
    backbone: str = "vgg19"
    vgg_weights: str | None = None
    segmenter: Any = None  # dpst.models.segmenter_config.SegmenterConfig | None
    device: str = "auto"
    max_upload_mb: int = 25
    # The largest photo accepted follows from a memory budget: every Fast slot and the one
    # Quality job working on photos of max_pixels at once must fit (:func:`pixel_cap`).
    # None: half of this machine's memory; max_pixels None: what the budget allows.
    memory_budget_mb: int | None = None
    max_pixels: int | None = None
    quality_size: int = 384  # default working size of Quality mode
    quality_max_size: int = 1024
    quality_iters: int = 100  # default L-BFGS iterations per stage
    quality_max_iters: int = 1000
    # Fast mode and Quality mode never wait for each other: Fast jobs (about a second, ONNX
    # Runtime is thread-safe) run several at once behind Gradio's queue of ``queue_size``;
    # Quality jobs (minutes) run one at a time, with at most ``quality_queue_size`` waiting
    # behind the running one; more are refused at once with a message, not queued for hours.
    fast_concurrency: int = 4
    queue_size: int = 16  # Fast requests (and the page's small events) that may wait
    quality_queue_size: int = 2
    example_side: int = 512
    min_fraction: float = 0.0  # label policy: 0 merges no region, as the published code

    @property
    def pixel_limit(self) -> int:
        """The largest photo accepted, in pixels (:func:`photo_pixels`)."""
        return photo_pixels(self)

    def __post_init__(self) -> None:
        if self.memory_budget_mb is not None and self.memory_budget_mb < 1:
            raise ValueError("memory_budget_mb must be positive")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        positive = ("max_upload_mb", "queue_size", "fast_concurrency")
        if any(getattr(self, name) < 1 for name in positive) or (self.max_pixels or 1) < 1:
            raise ValueError(f"{', '.join(positive)} and max_pixels must be positive")
        if self.quality_queue_size < 0:
            raise ValueError("quality_queue_size must be 0 or more")


def photo_pixels(config: AppConfig) -> int:
    """The largest photo ``config`` accepts: ``max_pixels`` if set, else what its memory
    budget allows (:func:`pixel_cap`)."""
    if config.max_pixels is not None:
        return config.max_pixels
    budget = config.memory_budget_mb or default_memory_budget_mb()
    return pixel_cap(budget, config.fast_concurrency)


def pixel_cap(memory_budget_mb: int, fast_concurrency: int) -> int:
    """The largest photo (pixels) for which ``fast_concurrency`` Fast jobs and one Quality job
    at once stay within ``memory_budget_mb``, at most :data:`PIXEL_CEILING`."""
    per_pixel = max(1, fast_concurrency) * FAST_BYTES_PER_PIXEL + QUALITY_BYTES_PER_PIXEL
    return max(1, min(PIXEL_CEILING, memory_budget_mb * 2**20 // per_pixel))


def default_memory_budget_mb() -> int:
    """:data:`DEFAULT_MEMORY_SHARE` of this machine's physical memory (4 GiB if unknown)."""

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 4096
    return max(1, int(total * DEFAULT_MEMORY_SHARE) // 2**20)
