"""One check for image batches, one vocabulary for what is wrong with them.

Every torch entry point that takes RGB images (the generator, the post-filter, the segmenter,
VGG-19, the LUT sampler) checks them here, so a wrong input reads the same everywhere and is
always an :class:`~dpst.errors.InputError` (a ``ValueError`` too).
"""

from __future__ import annotations

import math

import torch

from dpst.errors import InputError


def check_image_batch(
    image: object, name: str = "image", *, unit_range: bool = False, slack: float = 0.0
) -> None:
    """Raise InputError unless ``image`` is a non-empty floating-point tensor ``(B,3,H,W)``.

    Args:
        image: the value to check.
        name: what the caller calls it, for the message.
        unit_range: also require finite values in ``[-slack, 1 + slack]``; without it, only
            the shape and dtype are checked (the values may be anything, NaN included).
        slack: how far outside [0, 1] rounding may take values (float16 export, say).
    """
    if not isinstance(image, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor (B,3,H,W); got {type(image).__name__}")
    if image.dim() != 4 or image.shape[1] != 3:
        raise InputError(f"{name} must be an RGB batch (B,3,H,W); got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor; got {image.dtype}")
    if image.numel() == 0:
        raise InputError(f"{name} must not be empty; got shape {tuple(image.shape)}")
    if unit_range:
        check_finite_unit_range(image, name, slack)


def check_finite_unit_range(image: torch.Tensor, name: str, slack: float = 0.0) -> None:
    """Raise InputError unless every value of ``image`` is finite and in [-slack, 1 + slack]."""
    low, high = (float(v) for v in torch.aminmax(image.detach()))
    if not (low >= -slack and high <= 1 + slack):  # also false for NaN
        raise InputError(
            f"{name} values must be finite and in [0, 1]; got min {low:.4g}, max {high:.4g}"
        )


def check_finite(image: torch.Tensor, name: str) -> None:
    """Raise InputError unless every value of ``image`` is finite."""
    low, high = (float(v) for v in torch.aminmax(image.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):  # NaN makes both NaN
        raise InputError(f"{name} values must be finite; got min {low:.4g}, max {high:.4g}")
