"""How much of a one-pass look to apply: a result between the content (0) and the model's full
transfer (1), or beyond it (up to 2), like the "Amount" of a Lightroom profile. Torch-free.

The model's grid holds 3x4 affine colour maps (row-major: output channel ``k`` is
``A[k,0]*r + A[k,1]*g + A[k,2]*b + A[k,3]``, :mod:`dpst.optim_reference.affine`), and
rendering is linear in the grid: each pixel's map is a weighted sum of cell maps whose weights
sum to 1. The identity grid therefore renders the content unchanged, whatever the guide, and

    render(identity + s * (grid - identity)) = content + s * (raw - content)

(up to float32 rounding), before the renderer's clamp to [0, 1]. Blending the tiny grid
costs nothing next to rendering the image. Models without a renderer (ONNX format 2) blend
the images instead (:func:`blend_image`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dpst.constants import DEFAULT_STRENGTH, STRENGTH_MAX, STRENGTH_MIN
from dpst.errors import InputError

__all__ = ["DEFAULT_STRENGTH", "STRENGTH_MAX", "STRENGTH_MIN", "blend_grid", "blend_image",
           "check_strength", "identity_grid"]  # fmt: skip

# The 3x4 identity map, row-major: coefficients 0, 5 and 10 are 1.
IDENTITY_COEFFS = np.eye(3, 4, dtype=np.float32).reshape(12)


def check_strength(value: Any, name: str = "strength") -> float:
    """``value`` as a float in [STRENGTH_MIN, STRENGTH_MAX]; else a one-line InputError."""
    try:
        strength = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(strength) and STRENGTH_MIN <= strength <= STRENGTH_MAX):
        raise InputError(
            f"{name} must be between {STRENGTH_MIN:g} and {STRENGTH_MAX:g} "
            f"(0 = the content, 1 = the full look), got {value}"
        )
    return strength


def identity_grid(shape: tuple[int, ...]) -> np.ndarray:
    """A grid ``(B, 12, D, Gh, Gw)`` float32 whose every cell holds the identity map (the
    NumPy twin of :func:`dpst.models.bilateral_grid.identity_grid`)."""
    if len(shape) != 5 or shape[1] != IDENTITY_COEFFS.size:
        raise InputError(f"a grid is (B, 12, D, Gh, Gw), got shape {tuple(shape)}")
    return np.broadcast_to(IDENTITY_COEFFS.reshape(1, 12, 1, 1, 1), shape)


def blend_grid(grid: np.ndarray, strength: float) -> np.ndarray:
    """``identity + strength * (grid - identity)``, float32; ``grid`` itself at strength 1
    (so the default path is bit for bit what it was)."""
    strength = check_strength(strength)
    if strength == DEFAULT_STRENGTH:
        return grid
    identity = identity_grid(grid.shape)
    grid = np.asarray(grid, dtype=np.float32)
    return identity + np.float32(strength) * (grid - identity)


def blend_image(content: np.ndarray, output: np.ndarray, strength: float) -> np.ndarray:
    """``clip(content + strength * (output - content), 0, 1)`` for float images in [0, 1];
    ``output`` itself at strength 1.

    For models without a renderer (format 2), whose output comes out of the graph clamped: the
    clamp then happens before the blend, so where the model's raw result left [0, 1] this is
    the blend of the clamped value, not the clamp of the grid path's blend."""
    strength = check_strength(strength)
    if strength == DEFAULT_STRENGTH:
        return output
    blended = content + np.float32(strength) * (output - content)
    return np.clip(blended, 0.0, 1.0).astype(np.float32, copy=False)
