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
    queue_size: int = 8  # requests waiting, all events together
    example_side: int = 512
    min_fraction: float = 0.0  # label policy: 0 merges no region, as the published code

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.max_pixels < 1 or self.max_upload_mb < 1 or self.queue_size < 1:
            raise ValueError("max_pixels, max_upload_mb and queue_size must be positive")
