"""Regions with no weights at all: sky or backdrop and the rest, for ``--masks auto`` without a
segmenter.

When no segmenter weights are on disk, the regions of a pair come from colour, position,
texture and connectivity alone. One role is told apart from the rest: the photo's
*background*, which is either its sky or its backdrop; ground, water and vegetation are not
(yet). A finder that is unsure gives one region. Torch-free (NumPy, SciPy, scikit-image),
deterministic; a photo is looked at WORK_SIDE px on the long side.

* **Sky**: the part above a skyline. The skyline is one row per column, found by dynamic
  programming (a cost per pixel of being above rather than below, a cost per row of jump
  between neighbouring columns) from two colour models in CIELAB plus texture: the part
  above (its colour may change with the row: a dusk or a hazy gradient) and the part below;
  the models and the line are refitted a few times. A building that reaches the top edge or
  a tree line cut into the sky is followed; a sky seen only through a window is not one
  (it covers too little of the top edge). The part above is kept only when it is confident:
  a fair share of the photo, across nearly all of the top edge, high in the frame, a clear
  colour step to the rest, and smoother than the rest (or, for a cloudy sky, much brighter
  than the rest with a strong colour step).
* **Backdrop**: a studio or plain background: smooth pixels connected to the image border,
  around most of the border, around a textured object near the middle.

A photo's sky is looked for first, then its backdrop. A pair gets two regions, ``rest`` (0)
and its background (1: ``sky``, ``backdrop``, or ``background`` when one photo has a sky and
the other a backdrop), only when both photos have one (matched by role); otherwise one region,
with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dpst.imageio import resize_long_side
from dpst.labels.regions import Regions

REST, BACKGROUND = 0, 1
SKY = BACKGROUND  # a sky is the background of its photo
ROLE_SKY, ROLE_BACKDROP = "sky", "backdrop"
# Label names; the background's is its role in both photos, or "background" (pair_names).
NAMES = {REST: "rest", BACKGROUND: "background"}
BACKGROUND_NAMES = (ROLE_SKY, ROLE_BACKDROP, "background")
WORK_SIDE = 160  # long side the photos are looked at, px

# Thresholds (tuned on synthetic images and on the 39 readable example pairs of the paper, all
# of them: see bench/weight_free.py; none is held out).
FLAT_TEXTURE = 1e-3  # a photo whose 90th percentile of texture is under this is flat
# The skyline.
LINE_JUMP_COST = 1.0  # cost per row the skyline moves between neighbouring columns
LINE_ROUNDS = 5  # refits of the two colour models and the line
VARIANCE_FLOOR = 0.05  # added to each feature's variance (features in units of ~10 Lab)
# A confident sky.
SKY_MIN_AREA, SKY_MAX_AREA = 0.05, 0.75  # share of the photo
SKY_MIN_TOP_COVER = 0.9  # share of the top row under the sky
SKY_MAX_CENTROID = 0.40  # the sky's mean row, as a share of the height
SKY_MIN_CONTRAST = 8.0  # RGB distance (0..255) of the sky's mean colour to the rest's
SKY_MIN_SMOOTHER = 1.5  # the rest's mean texture over the sky's
CLOUDY_MIN_SMOOTHER = 0.7  # a cloudy sky may be as textured as this...
CLOUDY_MIN_BRIGHTER = 35.0  # ...when its mean is this much brighter (0..255) than the rest
CLOUDY_MIN_CONTRAST = 75.0  # ...and this far from the rest's colour
# A confident backdrop.
BACKDROP_TEXTURE = 0.03  # local mean gradient of lightness (0..1) a backdrop pixel may have
BACKDROP_MIN_PIECE = 0.10  # share of the border a smooth piece must hold to count
BACKDROP_MIN_BORDER = 0.6  # share of the border the backdrop covers
BACKDROP_MIN_AREA, BACKDROP_MAX_AREA = 0.2, 0.9
BACKDROP_MIN_SMOOTHER = 3.0
BACKDROP_CENTRE = (0.2, 0.8)  # the object's centroid lies in this span of each axis
BACKDROP_MIN_CONTRAST = 20.0
GROW_STEPS = 6  # px at the work size the backdrop may grow by colour after the tests
GROW_DISTANCE = 0.08  # RGB distance (0..1) to the local backdrop colour a grown pixel may have


@dataclass(frozen=True)
class Finding:
    """One photo's background at the work size: ``mask`` (bool) and ``role`` (``"sky"`` or
    ``"backdrop"``) when confident, else None and ``reason`` says why; ``stats`` the measures
    the tests were made on."""

    mask: np.ndarray | None
    role: str | None
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


@dataclass(frozen=True)
class _Look:
    """A photo at the work size: ``rgb`` in [0, 1], ``features`` per pixel (L, a, b over 10
    and a texture term), ``texture`` the local mean gradient of lightness (0..1 scale)."""

    rgb: np.ndarray
    features: np.ndarray
    texture: np.ndarray


def _look(image) -> _Look | str:
    """The photo looked at, or why it cannot be (too small, flat)."""
    from skimage.color import rgb2lab

    rgb = _work_size(_as_float(image)).astype(np.float32)
    h, w = rgb.shape[:2]
    if h < 16 or w < 16:
        return "photo too small"
    lab = rgb2lab(rgb).astype(np.float32)
    blurred = ndimage.gaussian_filter(lab[..., 0] / 100.0, 1.0)
    grad = np.hypot(ndimage.sobel(blurred, 0), ndimage.sobel(blurred, 1)) / 8.0
    texture = ndimage.uniform_filter(grad, 5)
    if float(np.percentile(texture, 90)) < FLAT_TEXTURE:
        return "photo flat, nothing to tell apart"
    texture_term = 20.0 * np.sqrt(np.maximum(texture, 0.0))
    features = np.concatenate([lab / 10.0, texture_term[..., None]], axis=2)
    return _Look(rgb, features, texture)


def _neg_log_likelihood(features: np.ndarray, mask: np.ndarray, by_row: bool) -> np.ndarray:
    """Per pixel, minus the log-likelihood (up to a constant) under a diagonal Gaussian fitted
    to ``features[mask]``; with ``by_row`` its mean is linear in the row (a sky's gradient)."""
    x = features[mask]
    if not by_row:
        mean, var = x.mean(0), x.var(0) + VARIANCE_FLOOR
        return 0.5 * ((features - mean) ** 2 / var + np.log(var)).sum(-1)
    h, w = mask.shape
    rows = np.broadcast_to((np.arange(h, dtype=np.float32) / h)[:, None], (h, w))
    design = np.stack([np.ones(len(x), np.float32), rows[mask]], axis=1)
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    var = ((x - design @ coef) ** 2).mean(0) + VARIANCE_FLOOR
    mean = coef[0] + rows[..., None] * coef[1]
    return 0.5 * ((features - mean) ** 2 / var + np.log(var)).sum(-1)


def _skyline(cost: np.ndarray) -> np.ndarray:
    """Per column, the row (0..h) the part above ends at, minimising the summed ``cost`` of
    the pixels above plus LINE_JUMP_COST per row of jump between neighbouring columns."""
    h, w = cost.shape
    line_cost = np.concatenate([np.zeros((1, w)), np.cumsum(cost, axis=0)], axis=0)
    ys = np.arange(h + 1)
    jump = LINE_JUMP_COST * np.abs(ys[:, None] - ys[None, :])
    total = line_cost[:, 0].copy()
    back = np.zeros((h + 1, w), dtype=np.int64)
    for x in range(1, w):
        options = total[None, :] + jump  # [row here, row in the previous column]
        back[:, x] = options.argmin(axis=1)
        total = options[ys, back[:, x]] + line_cost[:, x]
    line = np.empty(w, dtype=np.int64)
    line[-1] = int(total.argmin())
    for x in range(w - 1, 0, -1):
        line[x - 1] = back[line[x], x]
    return line


def _measures(look: _Look, mask: np.ndarray) -> dict:
    rgb, texture, rest = look.rgb, look.texture, ~mask
    mean_in, mean_out = rgb[mask].mean(0), rgb[rest].mean(0)
    return {
        "area": float(mask.mean()),
        "contrast": float(255 * np.linalg.norm(mean_in - mean_out)),
        "smoother": float((texture[rest].mean() + 1e-4) / (texture[mask].mean() + 1e-4)),
        "brighter": float(255 * (mean_in.mean() - mean_out.mean())),
    }


def _find_sky(look: _Look) -> Finding:
    h, w = look.texture.shape
    rows = np.arange(h)[:, None]
    above = np.broadcast_to(rows < max(2, h // 10), (h, w))
    below = np.broadcast_to(rows >= 0.7 * h, (h, w))
    for _ in range(LINE_ROUNDS):
        cost = _neg_log_likelihood(look.features, above, by_row=True) - _neg_log_likelihood(
            look.features, below, by_row=False
        )
        new_above = rows < _skyline(cost)[None, :]
        share = float(new_above.mean())
        if share < 0.02 or share > 0.98:
            return Finding(None, None, "no skyline", {"area": share})
        if np.array_equal(new_above, above):
            break
        above, below = new_above, ~new_above
    sky = np.asarray(above)
    stats = _measures(look, sky)
    stats.update(top_cover=float(sky[0].mean()), centroid=float(np.nonzero(sky)[0].mean() / h))
    area = stats["area"]
    if area < SKY_MIN_AREA:
        return Finding(None, None, f"sky too small ({area:.0%})", stats)
    if area > SKY_MAX_AREA:
        return Finding(None, None, f"sky covers {area:.0%} of the photo", stats)
    if stats["top_cover"] < SKY_MIN_TOP_COVER:
        return Finding(
            None, None, f"sky covers only {stats['top_cover']:.0%} of the top edge", stats
        )
    if stats["centroid"] > SKY_MAX_CENTROID:
        return Finding(None, None, "top part too low in the frame", stats)
    if stats["contrast"] < SKY_MIN_CONTRAST:
        return Finding(None, None, "no clear colour step under the top part", stats)
    cloudy = (
        stats["smoother"] >= CLOUDY_MIN_SMOOTHER
        and stats["brighter"] >= CLOUDY_MIN_BRIGHTER
        and stats["contrast"] >= CLOUDY_MIN_CONTRAST
    )
    if stats["smoother"] < SKY_MIN_SMOOTHER and not cloudy:
        return Finding(None, None, "the top part is not smoother than the rest", stats)
    return Finding(sky, ROLE_SKY, "sky", stats)


def _find_backdrop(look: _Look) -> Finding:
    h, w = look.texture.shape
    smooth = ndimage.binary_opening(look.texture < BACKDROP_TEXTURE, iterations=1)
    pieces, _ = ndimage.label(smooth)
    border = np.zeros((h, w), dtype=bool)
    border[0] = border[-1] = border[:, 0] = border[:, -1] = True
    on_border = pieces[border]
    ids, counts = np.unique(on_border[on_border > 0], return_counts=True)
    keep = ids[counts > BACKDROP_MIN_PIECE * border.sum()]
    if not len(keep):
        return Finding(None, None, "no smooth area along the border", {})
    backdrop = _grow(look.rgb, np.isin(pieces, keep))
    if backdrop.all():
        return Finding(None, None, "the whole photo is smooth", {"area": 1.0})
    stats = _measures(look, backdrop)
    object_rows, object_cols = np.nonzero(~backdrop)
    stats.update(
        border_cover=float(backdrop[border].mean()),
        object_row=float(object_rows.mean() / h),
        object_col=float(object_cols.mean() / w),
    )
    area, low, high = stats["area"], *BACKDROP_CENTRE
    if stats["border_cover"] < BACKDROP_MIN_BORDER:
        return Finding(
            None, None, f"smooth area along {stats['border_cover']:.0%} of the border", stats
        )
    if not BACKDROP_MIN_AREA <= area <= BACKDROP_MAX_AREA:
        return Finding(None, None, f"backdrop would cover {area:.0%} of the photo", stats)
    if stats["smoother"] < BACKDROP_MIN_SMOOTHER:
        return Finding(None, None, "the object is not more textured than the backdrop", stats)
    if not (low < stats["object_row"] < high and low < stats["object_col"] < high):
        return Finding(None, None, "no object near the middle", stats)
    if stats["contrast"] < BACKDROP_MIN_CONTRAST:
        return Finding(None, None, "no clear colour step to the object", stats)
    return Finding(backdrop, ROLE_BACKDROP, "backdrop", stats)


def _grow(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``region`` grown up to GROW_STEPS px into neighbours of its local colour: the texture
    measure leaves a margin along every edge (a halo around the object)."""
    for _ in range(GROW_STEPS):
        weight = ndimage.uniform_filter(region.astype(np.float32), 7)
        local = (
            np.stack([ndimage.uniform_filter(rgb[..., c] * region, 7) for c in range(3)], axis=2)
            / np.maximum(weight, 1e-6)[..., None]
        )
        ring = ndimage.binary_dilation(region) & ~region & (weight > 0)
        close = np.linalg.norm(rgb - local, axis=2) < GROW_DISTANCE
        added = ring & close
        if not added.any():
            break
        region = region | added
    return region


def find_sky(image) -> Finding:
    """The sky of one photo (any size, uint8 or float in [0, 1]) at the work size, or None
    with the reason. Raises ValueError on an image that is not (H, W, 3)."""
    look = _look(image)
    return Finding(None, None, look, {}) if isinstance(look, str) else _find_sky(look)


def find_backdrop(image) -> Finding:
    """The backdrop of one photo (as :func:`find_sky`), or None with the reason."""
    look = _look(image)
    return Finding(None, None, look, {}) if isinstance(look, str) else _find_backdrop(look)


def find_background(image) -> Finding:
    """One photo's sky, else its backdrop, else None with both reasons."""
    look = _look(image)
    if isinstance(look, str):
        return Finding(None, None, look, {})
    sky = _find_sky(look)
    if sky.mask is not None:
        return sky
    backdrop = _find_backdrop(look)
    if backdrop.mask is not None:
        return backdrop
    return Finding(None, None, f"sky: {sky.reason}; backdrop: {backdrop.reason}", {})


def _to_size(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a work-size mask to ``hw``, as int64 labels."""
    h, w = hw
    rows = np.minimum((np.arange(h) * mask.shape[0]) // h, mask.shape[0] - 1)
    cols = np.minimum((np.arange(w) * mask.shape[1]) // w, mask.shape[1] - 1)
    return np.where(mask[rows][:, cols], BACKGROUND, REST).astype(np.int64)


def _background_name(content_role: str, style_role: str) -> str:
    return content_role if content_role == style_role else "background"


def background_labels(image) -> tuple[np.ndarray | None, str]:
    """One photo's regions at its size: ``REST`` and ``BACKGROUND`` labels and the
    background's role (``"sky"`` or ``"backdrop"``) when it is sure, else None and why.
    Raises ValueError on an image that is not (H, W, 3)."""
    found = find_background(image)
    if found.mask is None:
        return None, found.reason
    return _to_size(found.mask, tuple(np.asarray(image).shape[:2])), found.role


def pair_names(content_role: str, style_role: str) -> tuple[str, str]:
    """The names of a pair's two weight-free labels: ``rest`` and the background's role, or
    ``background`` when one photo has a sky and the other a backdrop."""
    return NAMES[REST], _background_name(content_role, style_role)


def weight_free_regions(content, style) -> tuple[Regions, str]:
    """The pair's weight-free regions (background and rest, or one region) and a one-line
    note (:func:`dpst.labels.finder.pair_finder`, as every front end finds them)."""
    from dpst.labels.finder import pair_finder, weight_free_finder

    regions, note = pair_finder(weight_free_finder(), style)(content)
    return regions, note
