"""Highlight protection for the one-pass look: clipped whites stay the brightest, near-white
tone of the image instead of turning into a rotated colour. NumPy only, pointwise.

A per-pixel affine colour map (the one-pass model's grid, on top of per-segment MKL) rotates
colours; a clipped highlight (RGB near 255, 254, 241) has no colour of its own to rotate, and
the map sends it to whatever its rotation gives white: grey-blue, pink, magenta, often darker
than the orange halo around it. Here, for pixels of the content near clipping, the mapped
colour is blended toward a tinted white:

- weight ``w = smoothstep(V_LOW, V_HIGH, v) * (1 - smoothstep(S_LOW, S_HIGH, s))`` from the
  content's max channel ``v`` and saturation ``s = (v - min) / v``: 1 on clipped, neutral
  pixels, 0 on anything coloured or below ``V_LOW`` (no seams: ``w`` is C1 in the content);
- target ``p = c * t``: the content scaled per channel by the look's highlight tint ``t``
  (the colour of the style's brightest region at its brightness, capped at white; neutral
  when that region is, see :func:`highlight_tint`), mixed toward white until its luma is at
  least the mapped colour's (protection never darkens a highlight);
- result ``o + a * w * (p - o)``, in [0, 1], ``a`` the image's amount
  (:func:`highlight_amount`): 1 when highlights cover at most AREA_LOW of the image, 0 from
  AREA_HIGH (a large clipped area is a sky or a background, which the look restyles).

``t``'s chromaticity has luma at least ``MIN_TINT_LUMA`` and ``t`` the brightness of the style's
brightest region: a fully weighted clipped white pixel (``c`` near 1) goes to the top of the
look's own luminance order (white in a daylight look, lamp-lit in a night one), never below the
mapped colour.

Strength (:mod:`dpst.serve.runtime.strength`): the tint is taken ``strength`` of the way from white,
``1 + strength * (t - 1)``, so at strength 0 the target is the content itself, as is the
mapped colour: the content comes out unchanged.
"""

from __future__ import annotations

import numpy as np

from dpst.constants import LUMA_REC709

# Content max channel: no protection below V_LOW, full from V_HIGH (of 1): clipped pixels
# only (248 to 254 of 255); bright skies and clouds below that keep the look.
V_LOW, V_HIGH = 0.97, 0.995
# Content saturation (max - min) / max: full protection below S_LOW, none from S_HIGH (the
# issue's sun, 255, 254, 241, has 0.055).
S_LOW, S_HIGH = 0.06, 0.20
# Share of the image that is highlight (mean weight): full protection up to AREA_LOW, none
# from AREA_HIGH. A sun or a specular is small; a clipped sky or a studio's white background
# is a region the look restyles (the paper's pairs turn such backgrounds dark).
AREA_LOW, AREA_HIGH = 0.02, 0.08
# Pixels sampled (on a regular lattice) to measure that share.
AREA_SAMPLES = 1 << 16
# Luma (Rec. 709) of the tint's chromaticity at least this: a highlight keeps near-neutral.
MIN_TINT_LUMA = 0.85
# How far above the style's mean brightness (in standard deviations) its "brightest region" is.
BRIGHT_SIGMAS = 2.0
LUMA = np.array(LUMA_REC709)
# The style's brightness for finding its brightest region: the channels' mean, so that noise
# of equal size in each channel (C = a 11' + b I) leaves a grey style's tint white.
BRIGHTNESS = np.full(3, 1 / 3)


def _smoothstep(low: float, high: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - np.float32(low)) * np.float32(1.0 / (high - low)), 0.0, 1.0)
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def highlight_tint(
    colour_mean: np.ndarray, colour_cov: np.ndarray, strength: float = 1.0
) -> np.ndarray:
    """The look's highlight tint ``(3,)`` float32: the colour a clipped white takes.

    Args:
        colour_mean: ``(3,)`` the style's mean RGB in [0, 1] (the style code's whole-image
            ``style_colour_mean``, label index K).
        colour_cov: ``(3, 3)`` its RGB covariance (``style_colour_cov``, index K).
        strength: the look's strength in [0, 2]; the tint goes ``strength`` of the way from
            white (white at 0).

    The brightest region's colour is estimated from the Gaussian the statistics describe: the
    mean colour of the style's pixels whose brightness is BRIGHT_SIGMAS standard deviations
    above its mean, ``b = m + BRIGHT_SIGMAS * C u / sqrt(u' C u)`` (``u`` = BRIGHTNESS, the
    channels' mean; the conditional mean of a Gaussian). Its chromaticity ``b / max(b)`` is
    desaturated toward white until its luma reaches MIN_TINT_LUMA (a neutral bright tail
    gives white), then scaled by the brightness the style reaches, ``min(1, max(b))``: a
    highlight takes the place of the look's brightest region, not white, in a night look
    (paper pair 20: a clipped cloud kept white in a night scene the paper turns dark).
    """
    mean = np.asarray(colour_mean, dtype=np.float64).reshape(3)
    cov = np.asarray(colour_cov, dtype=np.float64).reshape(3, 3)
    spread = cov @ BRIGHTNESS
    sigma = float(np.sqrt(max(float(BRIGHTNESS @ spread), 0.0)))
    bright = mean + (BRIGHT_SIGMAS * spread / sigma if sigma > 1e-6 else 0.0)
    bright = np.clip(bright, 1e-3, None)
    tint = np.clip(bright / bright.max(), 0.0, 1.0)
    luma = float(LUMA @ tint)
    if luma < MIN_TINT_LUMA:  # toward white: luma of 1 - k (1 - t) is 1 - k (1 - luma)
        tint = 1.0 - (1.0 - MIN_TINT_LUMA) / (1.0 - luma) * (1.0 - tint)
    tint = tint * min(1.0, float(bright.max()))
    tint = np.clip(1.0 + float(strength) * (tint - 1.0), 0.0, 1.0)
    return tint.astype(np.float32)


def highlight_weight(content: np.ndarray) -> np.ndarray:
    """How much each pixel is a highlight, ``(...)`` float32 in [0, 1], for ``content``
    ``(..., 3)`` float in [0, 1]: near-clipped (max channel) and near-neutral (saturation)."""
    top = content.max(axis=-1)
    low = content.min(axis=-1)
    sat = (top - low) / np.maximum(top, np.float32(1e-6))
    return _smoothstep(V_LOW, V_HIGH, top) * (np.float32(1.0) - _smoothstep(S_LOW, S_HIGH, sat))


def highlight_amount(content: np.ndarray, samples: int = AREA_SAMPLES) -> float:
    """How much protection an image gets, in [0, 1]: ``1 - smoothstep(AREA_LOW, AREA_HIGH,
    a)``, ``a`` the mean :func:`highlight_weight` over a lattice of about ``samples`` pixels
    of ``content`` ``(H, W, 3)`` (uint8, or float in [0, 1]); read in place, never copied
    whole (50 MP: a 65k-pixel view)."""
    height, width = content.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(height * width / samples))))
    sample = content[step // 2 :: step, step // 2 :: step]
    if sample.dtype == np.uint8:
        sample = sample.astype(np.float32) * np.float32(1 / 255)
    share = float(highlight_weight(np.asarray(sample, dtype=np.float32)).mean())
    return float(1.0 - _smoothstep(AREA_LOW, AREA_HIGH, np.float32(share)))


def protect_highlights(
    content: np.ndarray, output: np.ndarray, tint: np.ndarray, amount: float = 1.0
) -> np.ndarray:
    """``output`` with the content's highlights blended toward the tinted content.

    Args:
        content: ``(..., 3)`` the content, float in [0, 1] (``(H, W, 3)`` or batch-first
            ``(B, H, W, 3)``).
        output: ``(..., 3)`` the look's result for it, float in [0, 1], same shape.
        tint: ``(3,)`` from :func:`highlight_tint` (strength already applied).
        amount: in [0, 1], multiplies the weight (:func:`highlight_amount` of the whole
            image, so every band of it gets the same).

    Returns:
        ``(..., 3)`` float32 in [0, 1]: ``o + w (p - o)``, ``w`` from
        :func:`highlight_weight`, ``p = c * tint`` mixed toward white, ``p + k (1 - p)``,
        with ``k`` in [0, 1] giving it the luma of ``o`` when ``o`` is brighter. Pixels with
        ``w = 0`` are returned exactly as given.
    """
    content = np.asarray(content, dtype=np.float32)
    result = np.array(output, dtype=np.float32)  # a copy; pixels with w = 0 stay as given
    weight = highlight_weight(content) * np.float32(amount)
    inside = weight > 0
    if not inside.any():
        return result
    # Only the weighted pixels (a few percent of an image at most, often none).
    weight, colour, mapped = weight[inside][:, None], content[inside], result[inside]
    luma = LUMA.astype(np.float32)
    target = colour * np.asarray(tint, dtype=np.float32)
    target_luma = target @ luma
    # Toward white until the luma is the mapped colour's, when that is brighter.
    lift = (mapped @ luma - target_luma) / np.maximum(np.float32(1.0) - target_luma, 1e-6)
    lift = np.clip(lift, 0.0, 1.0)[:, None]
    target = target + lift * (np.float32(1.0) - target)
    result[inside] = np.clip(mapped + weight * (target - mapped), 0.0, 1.0)
    return result
