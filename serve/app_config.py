"""What one demo server offers and allows: :class:`AppConfig`, built by ``dpst serve``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MASK_MODES = ("none", "automatic", "upload", "paint")
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
    max_pixels: int = 25_000_000  # 6000x4000 cameras; 4K is 8.3 MP
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

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        positive = ("max_pixels", "max_upload_mb", "queue_size", "fast_concurrency")
        if any(getattr(self, name) < 1 for name in positive):
            raise ValueError(f"{', '.join(positive)} must be positive")
        if self.quality_queue_size < 0:
            raise ValueError("quality_queue_size must be 0 or more")
