"""Regions with no weights at all: a sky finder for ``--masks auto`` without a segmenter.

When no segmenter weights are on disk, the regions of a pair come from colour, position,
texture and connectivity alone. Only the sky is told apart (the largest gain); ground, water
and vegetation are not (yet): a finder that is unsure gives one region. Torch-free
(NumPy and SciPy only), deterministic.

A photo's sky is the set of smooth pixels, bright for the photo and blue-ish or bright and
nearly neutral (or warm, at sunset), connected to the top edge; it is kept only when it is
confident: a fair share of the photo, high in the frame, across much of the top edge, and
clearly set apart from what lies under it (colour and smoothness), which rejects most indoor
windows and walls. A pair gets two regions, ``rest`` (0) and ``sky`` (1), only when both
photos have a confident sky (matched by role); otherwise one region, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dpst.constants import LUMA_REC601
from dpst.imageio import resize_long_side
from dpst.labels.regions import Regions

REST, SKY = 0, 1
NAMES = {REST: "rest", SKY: "sky"}
WORK_SIDE = 160  # long side the photos are looked at, px

# Thresholds (set on synthetic images and by eye on a few example pairs, see the report).
TEXTURE_MAX = 0.035  # local mean gradient of luma (0..1 scale) a sky pixel may have
BRIGHT_PERCENTILE = 40  # a sky pixel is brighter than this percentile of the photo's luma
MIN_AREA, MAX_AREA = 0.05, 0.80  # share of the photo a confident sky covers
MIN_TOP_COVER = 0.5  # share of the top row (top 2% of rows) the sky covers
MAX_CENTROID = 0.40  # the sky's mean row, as a share of the height
MAX_BELOW = 0.10  # share of the sky's pixels allowed in the lower half
MIN_CONTRAST = 8.0  # colour distance (RGB, 0..255 scale) of the sky's mean to the rest's
MIN_SMOOTHER = 1.8  # the rest is at least this much more textured than the sky
NIGHT_PERCENTILE = 50  # a night sky pixel is darker than this percentile of the luma
NIGHT_TOP_COVER = 0.8  # stricter tests for a dark sky
NIGHT_SMOOTHER = 3.0
GROW_STEPS = 6  # px at the work size the sky may grow by colour after the tests
GROW_DISTANCE = 0.08  # RGB distance (0..1) to the local sky colour a grown pixel may have


@dataclass(frozen=True)
class SkyFinding:
    """One photo's sky at the work size: ``mask`` (bool) when confident, else None and
    ``reason`` says why; ``stats`` the measures the tests were made on."""

    mask: np.ndarray | None
    reason: str
    stats: dict


def _as_float(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8 and max(array.shape[:2]) > 4 * WORK_SIDE:
        # Shrunk in 8 bits first: a 50-megapixel photo is never made float whole (600 MB).
        return resize_long_side(np.ascontiguousarray(array), 2 * WORK_SIDE)
    if array.dtype == np.uint8:
        out = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        out = array.astype(np.float32) / 65535.0
    else:
        out = np.clip(array.astype(np.float32), 0.0, 1.0)
    if not np.isfinite(out).all():
        raise ValueError("the image has non-finite values")
    return out


def _work_size(image: np.ndarray) -> np.ndarray:
    """The photo at WORK_SIDE px on the long side, whatever its size, so that the thresholds
    mean the same on a thumbnail and on a full-size photo: box-averaged by an integer factor
    to under twice that, then resampled (linear) to it."""
    h, w = image.shape[:2]
    factor = max(1, max(h, w) // (2 * WORK_SIDE))
    if factor > 1:
        hh, ww = h // factor, w // factor
        image = image[: hh * factor, : ww * factor]
        image = image.reshape(hh, factor, ww, factor, 3).mean(axis=(1, 3))
        h, w = hh, ww
    scale = WORK_SIDE / max(h, w)
    if abs(scale - 1.0) < 1e-6 or min(h, w) * scale < 1:
        return image
    if scale < 1:  # anti-alias before sampling down
        image = ndimage.gaussian_filter(image, (0.5 / scale, 0.5 / scale, 0))
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    zoom = (out_h / h, out_w / w, 1)
    return np.clip(ndimage.zoom(image, zoom, order=1, grid_mode=True, mode="nearest"), 0, 1)


def find_sky(image) -> SkyFinding:
    """The sky of one photo (any size, uint8 or float in [0, 1]) at the work size, or None
    with the reason. Raises ValueError on an image that is not (H, W, 3)."""
    rgb = _work_size(_as_float(image))
    h, w = rgb.shape[:2]
    if h < 16 or w < 16:
        return SkyFinding(None, "photo too small", {})
    luma = rgb @ np.array(LUMA_REC601, dtype=np.float32)
    blurred = ndimage.gaussian_filter(luma, 1.0)
    grad = np.hypot(ndimage.sobel(blurred, 0), ndimage.sobel(blurred, 1)) / 8.0
    texture = ndimage.uniform_filter(grad, 5)
    if float(np.percentile(texture, 90)) < 1e-3:
        return SkyFinding(None, "photo flat, nothing to tell apart", {})
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    blueish = (b >= r + 0.02) & (b >= g - 0.04)
    bright_neutral = (luma > 0.55) & (chroma < 0.18)
    warm_bright = (luma > 0.45) & (r > b)  # sunset and hazy skies
    colour_ok = blueish | bright_neutral | warm_bright
    bright = luma >= np.percentile(luma, BRIGHT_PERCENTILE)
    day = _judge(rgb, texture, (texture < TEXTURE_MAX) & bright & colour_ok, night=False)
    if day.mask is not None:
        return day
    # A night sky: smooth, dark, neutral or blue, over a lit and textured rest; held to
    # stricter tests (across most of the top edge, a rest much more textured).
    dark = (luma < np.percentile(luma, NIGHT_PERCENTILE)) & (luma < 0.25)
    night_colour = (chroma < 0.12) | blueish
    night = _judge(rgb, texture, (texture < TEXTURE_MAX) & dark & night_colour, night=True)
    return night if night.mask is not None else day


def _judge(rgb: np.ndarray, texture: np.ndarray, candidate: np.ndarray, night: bool):
    """The part of ``candidate`` connected to the top edge, if it passes the confidence tests."""
    h = rgb.shape[0]
    kind = "dark" if night else "bright"
    candidate = ndimage.binary_opening(candidate, iterations=1)
    components, count = ndimage.label(candidate)
    if count == 0:
        return SkyFinding(None, f"no smooth {kind} area", {})
    top_band = max(1, round(0.02 * h))
    touching = np.unique(components[:top_band])
    touching = touching[touching > 0]
    if not len(touching):
        return SkyFinding(None, f"no smooth {kind} area at the top edge", {})
    sky = np.isin(components, touching)
    # Close small holes (birds, wires, a cloud edge), never reaching down past the sky.
    sky = ndimage.binary_closing(sky, iterations=2) | sky
    sky = ndimage.binary_fill_holes(sky)
    area = float(sky.mean())
    rows = np.nonzero(sky)[0]
    stats: dict = {"area": area, "night": night}
    if area < MIN_AREA:
        return SkyFinding(None, f"sky too small ({area:.0%})", stats)
    if area > MAX_AREA:
        return SkyFinding(None, f"sky covers {area:.0%} of the photo", stats)
    top_cover = float(sky[:top_band].mean())
    centroid = float(rows.mean() / h)
    below = float(np.mean(rows >= h / 2))
    rest = ~sky
    sky_mean, rest_mean = rgb[sky].mean(0), rgb[rest].mean(0)
    # The rest's colour just under the sky, where a boundary should be clear.
    under = ndimage.binary_dilation(sky, iterations=4) & rest
    under_mean = rgb[under].mean(0) if under.any() else rest_mean
    contrast = 255 * min(
        np.linalg.norm(sky_mean - rest_mean), 2 * np.linalg.norm(sky_mean - under_mean)
    )
    contrast = float(contrast)
    smoother = float((texture[rest].mean() + 1e-4) / (texture[sky].mean() + 1e-4))
    stats.update(
        top_cover=top_cover, centroid=centroid, below=below, contrast=contrast, smoother=smoother
    )
    if top_cover < (NIGHT_TOP_COVER if night else MIN_TOP_COVER):
        return SkyFinding(None, f"sky covers only {top_cover:.0%} of the top edge", stats)
    if centroid > MAX_CENTROID:
        return SkyFinding(None, "smooth area too low in the frame", stats)
    if below > MAX_BELOW:
        return SkyFinding(None, "smooth area reaches the lower half", stats)
    if contrast < MIN_CONTRAST:
        return SkyFinding(None, "no clear boundary under the smooth area", stats)
    if smoother < (NIGHT_SMOOTHER if night else MIN_SMOOTHER):
        return SkyFinding(None, "the rest is as smooth as the smooth area", stats)
    return SkyFinding(_grow(rgb, sky), "night sky" if night else "sky", stats)


def _grow(rgb: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """``sky`` grown up to GROW_STEPS px into neighbours of the local sky's colour: the
    texture measure leaves a margin of rest along every edge (a halo under the skyline)."""
    for _ in range(GROW_STEPS):
        weight = ndimage.uniform_filter(sky.astype(np.float32), 7)
        local = (
            np.stack([ndimage.uniform_filter(rgb[..., c] * sky, 7) for c in range(3)], axis=2)
            / np.maximum(weight, 1e-6)[..., None]
        )
        ring = ndimage.binary_dilation(sky) & ~sky & (weight > 0)
        close = np.linalg.norm(rgb - local, axis=2) < GROW_DISTANCE
        added = ring & close
        if not added.any():
            break
        sky = sky | added
    return sky


def _to_size(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a work-size mask to ``hw``, as int64 labels."""
    h, w = hw
    rows = np.minimum((np.arange(h) * mask.shape[0]) // h, mask.shape[0] - 1)
    cols = np.minimum((np.arange(w) * mask.shape[1]) // w, mask.shape[1] - 1)
    return np.where(mask[rows][:, cols], SKY, REST).astype(np.int64)


def sky_labels(image) -> tuple[np.ndarray | None, str]:
    """One photo's regions at its size: ``REST`` and ``SKY`` labels when its sky is sure, else
    None and why. Raises ValueError on an image that is not (H, W, 3)."""
    found = find_sky(image)
    if found.mask is None:
        return None, found.reason
    return _to_size(found.mask, tuple(np.asarray(image).shape[:2])), found.reason


def weight_free_regions(content, style) -> tuple[Regions, str]:
    """The pair's weight-free regions (sky and rest, or one region) and a one-line note
    (:func:`dpst.labels.finder.pair_finder`, as every front end finds them)."""
    from dpst.labels.finder import pair_finder, weight_free_finder

    regions, note = pair_finder(weight_free_finder(), style)(content)
    return regions, note
