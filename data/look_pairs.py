"""Self-supervised training pairs from photographs and photographic looks (3D LUTs).

The principle of Neural Preset (Ke et al., CVPR 2023): for a photo ``I``, another view
``V(I)`` of the SAME photo (a crop with partial overlap, flipped, turned, rescaled) and looks
A and B,

    content = look_A(I),   style = look_B(V(I)),   target = look_B(I).

The two images share the scene's colours, so the look is recoverable from the style, while no
pixel corresponds, so a network cannot copy colours by position. A share of pairs carries
2-4 regions (SLIC superpixels clustered by colour and position, carried into the other view
by the same geometry, feathered), each with its own look, and their label maps, so that the
network learns to take each region's look from the same label of the style. A share is
"unpaired": the style is another photo and there is no target (trained only through colour
statistics, never against a LUT target, which would be ambiguous).

Samples are pure functions of an integer seed, so a training run is exactly repeatable and
resumable. Images are float ``(3, S, S)`` in [0, 1]; label maps int64 ``(S, S)``, -1 where
unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dpst.constants import UNLABELLED
from dpst.data.luts import apply_lut, blend_luts, identity_lut, random_look
from dpst.data.photo_pool import PhotoPool

# A region must cover this share of both views to keep its own look; smaller ones join the
# largest region (both views alike, so content and style carry the same label set).
MIN_REGION_SHARE = 0.05
KMEANS_ITERATIONS = 8


@dataclass(frozen=True)
class LookPairConfig:
    """How pairs are drawn; shares are probabilities per sample."""

    size: int = 128  # side of the square crops
    # The content gets a look of its own (else the photo as is). With 10% instead (and no
    # unpaired pairs, lr 3e-4) held-out synthetic pairs improved, but the network learned to
    # damp the transfer and the paper's examples got much worse (README, "The bundled model").
    content_look_share: float = 0.5
    random_look_share: float = 0.4  # a generated look (tone curve, balance...) vs a LUT file
    blend_share: float = 0.3  # the look is a blend of two (or of one and the identity)
    region_share: float = 0.35  # 2-4 regions, each its own look, label maps given
    unpaired_share: float = 0.15  # style from another photo, no target (statistics only)
    max_regions: int = 4
    num_labels: int = 16  # label ids are drawn from [0, num_labels)
    crop_min: float = 0.45  # content crop side, as a fraction of the photo's short side
    crop_max: float = 0.9
    feather: float = 2.0  # px: Gaussian softening of region edges in the looks' mix

    def validate(self) -> None:
        for name in ("content_look_share", "random_look_share", "blend_share",
                     "region_share", "unpaired_share"):  # fmt: skip
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.size < 16 or not 0 < self.crop_min <= self.crop_max <= 1:
            raise ValueError("need size >= 16 and 0 < crop_min <= crop_max <= 1")
        if not 2 <= self.max_regions <= self.num_labels:
            raise ValueError("need 2 <= max_regions <= num_labels")


@dataclass(frozen=True)
class View:
    """A square crop ``(top, left, side)`` of a photo, then a flip and quarter turns."""

    top: int
    left: int
    side: int
    flip: bool = False
    turns: int = 0


def crop_view(image: torch.Tensor, view: View, size: int, mode: str = "bilinear"):
    """``image`` ``(C, H, W)`` cropped, flipped, turned and resized to ``(C, size, size)``."""
    x = image[:, view.top : view.top + view.side, view.left : view.left + view.side]
    if view.flip:
        x = x.flip(-1)
    x = torch.rot90(x, view.turns, dims=(-2, -1))
    if mode == "nearest":
        return F.interpolate(x[None].float(), size=(size, size), mode="nearest")[0].to(x.dtype)
    return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0]


def _views(shape: tuple[int, int], config: LookPairConfig, rng: np.random.Generator):
    """The content's view and the style's: partial overlap, another scale, flips, turns."""
    height, width = shape
    short = min(height, width)
    side = int(rng.uniform(config.crop_min, config.crop_max) * short)
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    content = View(top, left, side)
    other = int(np.clip(side * rng.uniform(0.75, 1.3), 16, short))
    # Shift the style crop by a quarter to two thirds of the side on each axis, so the views
    # overlap in part; then clamp it into the photo.
    shift = rng.uniform(0.25, 0.66, size=2) * side * rng.choice([-1, 1], size=2)
    s_top = int(np.clip(top + (side - other) / 2 + shift[0], 0, height - other))
    s_left = int(np.clip(left + (side - other) / 2 + shift[1], 0, width - other))
    style = View(s_top, s_left, other, bool(rng.random() < 0.5), int(rng.integers(0, 4)))
    return content, style


def _regions(pool: PhotoPool, index: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` regions of a photo: its superpixels clustered by colour and position."""
    from skimage.color import rgb2lab

    superpixels = pool.superpixels(index)
    n = int(superpixels.max()) + 1
    lab = rgb2lab(pool.photos[index]).reshape(-1, 3)
    flat = superpixels.reshape(-1)
    ys, xs = np.divmod(np.arange(flat.size), superpixels.shape[1])
    area = np.maximum(np.bincount(flat, minlength=n), 1)
    side = max(superpixels.shape)
    features = np.stack(
        [np.bincount(flat, lab[:, c], n) / area for c in range(3)]
        + [np.bincount(flat, coord * (100.0 / side), n) / area for coord in (ys, xs)],
        axis=1,
    )
    centres = features[rng.choice(n, size=min(count, n), replace=False)]
    for _ in range(KMEANS_ITERATIONS):
        assign = ((features[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for k in range(len(centres)):
            if np.any(assign == k):
                centres[k] = features[assign == k].mean(0)
    return assign[superpixels]


def _feathered(labels: torch.Tensor, count: int, sigma: float) -> torch.Tensor:
    """Soft one-hot ``(count, S, S)`` weights summing to 1, edges blurred by ``sigma`` px."""
    one_hot = F.one_hot(labels.long(), count).permute(2, 0, 1).float()
    if sigma <= 0:
        return one_hot
    radius = max(1, int(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).view(1, 1, -1)
    x = one_hot[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), taps[..., None, :])
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), taps[..., :, None])
    x = x[:, 0]
    return x / x.sum(0, keepdim=True).clamp_min(1e-6)


class LookSampler:
    """Draws :func:`sample` pairs from a photo pool and a stack of looks ``(N, 3, L, L, L)``."""

    def __init__(self, pool: PhotoPool, looks: torch.Tensor, config: LookPairConfig) -> None:
        config.validate()
        if len(pool) == 0 or looks.shape[0] == 0:
            raise ValueError("need at least one photo and one look")
        self.pool, self.looks, self.config = pool, looks, config

    def _look(self, rng: np.random.Generator) -> torch.Tensor:
        cfg, size = self.config, self.looks.shape[-2]
        if rng.random() < cfg.random_look_share:
            look = random_look(torch.Generator().manual_seed(int(rng.integers(2**62))), size)
        else:
            look = self.looks[int(rng.integers(len(self.looks)))]
        if rng.random() < cfg.blend_share:
            if rng.random() < 1 / 3:
                other = identity_lut(size)
            elif rng.random() < cfg.random_look_share:
                other = random_look(torch.Generator().manual_seed(int(rng.integers(2**62))), size)
            else:
                other = self.looks[int(rng.integers(len(self.looks)))]
            look = blend_luts(look, other, float(rng.uniform(0.25, 0.75)))
        return look

    def sample(self, seed: int) -> dict:
        """One pair, a pure function of ``seed``: ``content``, ``style``, ``target``
        (``(3, S, S)`` in [0, 1]; zeros without a target), ``content_labels``,
        ``style_labels`` (int64 ``(S, S)``, -1 unlabelled), ``has_target`` (bool)."""
        cfg, rng = self.config, np.random.default_rng(seed)
        index = int(rng.integers(len(self.pool)))
        photo = torch.from_numpy(self.pool.photos[index]).permute(2, 0, 1).float() / 255
        view_c, view_s = _views(photo.shape[1:], cfg, rng)
        raw = crop_view(photo, view_c, cfg.size).clamp(0, 1)
        content = raw
        if rng.random() < cfg.content_look_share:
            content = apply_lut(raw[None], self._look(rng))[0]
        unlabelled = torch.full((cfg.size, cfg.size), UNLABELLED, dtype=torch.long)
        if rng.random() < cfg.unpaired_share and len(self.pool) > 1:
            other = (index + 1 + int(rng.integers(len(self.pool) - 1))) % len(self.pool)
            image = torch.from_numpy(self.pool.photos[other]).permute(2, 0, 1).float() / 255
            view_o, _ = _views(image.shape[1:], cfg, rng)
            style_raw = crop_view(image, view_o, cfg.size).clamp(0, 1)
            style = apply_lut(style_raw[None], self._look(rng))[0]
            return self._pair(content, style, torch.zeros_like(content), unlabelled,
                              unlabelled, False)  # fmt: skip
        style_raw = crop_view(photo, view_s, cfg.size).clamp(0, 1)
        if rng.random() < cfg.region_share:
            count = int(rng.integers(2, cfg.max_regions + 1))
            regions = torch.from_numpy(_regions(self.pool, index, count, rng))[None]
            labels_c = crop_view(regions, view_c, cfg.size, "nearest")[0].long()
            labels_s = crop_view(regions, view_s, cfg.size, "nearest")[0].long()
            labels_c, labels_s, kept = _common_regions(labels_c, labels_s, count)
            if kept >= 2:
                looks = torch.stack([self._look(rng) for _ in range(kept)])
                ids = torch.from_numpy(rng.choice(cfg.num_labels, size=kept, replace=False))
                target = _regional(raw, labels_c, looks, cfg.feather)
                style = _regional(style_raw, labels_s, looks, cfg.feather)
                return self._pair(content, style, target, ids[labels_c], ids[labels_s], True)
        look = self._look(rng)
        target = apply_lut(raw[None], look)[0]
        style = apply_lut(style_raw[None], look)[0]
        return self._pair(content, style, target, unlabelled, unlabelled, True)

    @staticmethod
    def _pair(content, style, target, content_labels, style_labels, has_target) -> dict:
        return {
            "content": content.contiguous(),
            "style": style.contiguous(),
            "target": target.contiguous(),
            "content_labels": content_labels.contiguous(),
            "style_labels": style_labels.contiguous(),
            "has_target": has_target,
        }


def _common_regions(labels_c: torch.Tensor, labels_s: torch.Tensor, count: int):
    """Regions large enough in both views keep their own look; the rest join the largest.

    Returns both maps renumbered ``0..kept-1`` the same way, and ``kept``.
    """
    share_c = torch.bincount(labels_c.flatten(), minlength=count).float() / labels_c.numel()
    share_s = torch.bincount(labels_s.flatten(), minlength=count).float() / labels_s.numel()
    keep = (share_c >= MIN_REGION_SHARE) & (share_s >= MIN_REGION_SHARE)
    if int(keep.sum()) < 2:
        return labels_c, labels_s, int(keep.sum())
    largest = int(torch.argmax(torch.where(keep, share_c + share_s, -1)))
    renumber = torch.cumsum(keep.long(), 0) - 1
    mapping = torch.where(keep, renumber, renumber[largest])
    return mapping[labels_c], mapping[labels_s], int(keep.sum())


def _regional(raw: torch.Tensor, labels: torch.Tensor, looks: torch.Tensor, feather: float):
    """Each region's look on ``raw`` ``(3, S, S)``, mixed by feathered region weights."""
    weights = _feathered(labels, looks.shape[0], feather)  # (R, S, S)
    graded = apply_lut(raw[None].expand(looks.shape[0], -1, -1, -1), looks)  # (R, 3, S, S)
    return (graded * weights[:, None]).sum(0).clamp(0, 1)


class LookPairDataset(torch.utils.data.Dataset):
    """Sample ``i`` of a run is ``sampler.sample(seed * STRIDE + i)``: a stream indexed by
    position, so resuming at step t reads exactly the samples an uninterrupted run would."""

    STRIDE = 1_000_000_007

    def __init__(self, sampler: LookSampler, seed: int, length: int) -> None:
        self.sampler, self.seed, self.length = sampler, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.sampler.sample(self.seed * self.STRIDE + int(index))
