"""Label maps to the generator's mask input: soft one-hot masks at low resolution.

The generator takes masks, not label maps: ``(B, K, h, w)`` floats in [0, 1], channel k the
fraction of each cell covered by label k, K = ``GeneratorConfig.max_labels`` (channels of
labels that do not occur are zero), at any resolution with the image's aspect ratio. Low
resolution is enough (the network works at 256 px) and keeps a 4K mask small; floats keep the
ONNX graph free of one-hot encoding. Label -1 means "unlabelled": all channels zero there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dpst.constants import UNLABELLED
from dpst.errors import InputError
from dpst.labels.pooled_masks import mask_size


def check_labels_in_range(
    labels: torch.Tensor,
    num_labels: int,
    where: str = "",
    advice: str = "merge labels or use a model with more max_labels",
) -> None:
    """InputError unless every label is in ``[-1, num_labels)`` (-1 = unlabelled); ``where``
    starts the message (``"pair 3: content "``), ``advice`` ends it."""
    if labels.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(labels))
    if low < UNLABELLED or high >= num_labels:
        bad = high if high >= num_labels else low
        raise InputError(
            f"{where}label {bad} is outside the trained range [0, {num_labels}) "
            f"(-1 = unlabelled); {advice}"
        )


def labels_to_masks(
    labels: torch.Tensor,
    num_labels: int,
    size: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Soft one-hot masks from an integer label map.

    Args:
        labels: ``(B, H, W)`` integer tensor, values in ``[0, num_labels)`` or -1 (unlabelled).
        num_labels: K, the number of mask channels (the model's ``max_labels``).
        size: ``(h, w)`` of the masks; each value is the area fraction of the label in the
            cell (``F.interpolate(mode="area")``). ``None`` keeps ``(H, W)``.
        dtype: floating dtype of the result.

    Returns:
        ``(B, K, h, w)`` in [0, 1]; channels sum to at most 1.

    Raises:
        InputError: wrong shape or dtype, or a label outside ``[-1, num_labels)``.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 3:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"a label map must be a (B, H, W) integer tensor, got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError(f"a label map must hold integers, got dtype {labels.dtype}")
    check_labels_in_range(labels, num_labels)
    height, width = labels.shape[1:]
    size = (height, width) if size is None else tuple(size)
    channels = []
    # Label by label, so that a 4K map never becomes a K-channel full-resolution tensor.
    for label in range(num_labels):
        onehot = (labels == label).to(dtype).unsqueeze(1)
        if size != (height, width):
            onehot = F.interpolate(onehot, size=size, mode="area")
        channels.append(onehot)
    return torch.cat(channels, dim=1)


def masks_for_image(
    labels: torch.Tensor,
    image: torch.Tensor,
    num_labels: int,
    long_side: int,
    name: str = "label map",
) -> torch.Tensor:
    """Masks for the label map of ``image`` ``(B, 3, H, W)``, at most ``long_side`` px.

    Raises:
        InputError: the label map is not ``(B, H, W)`` with the image's B, H and W, or a
            label is outside ``[-1, num_labels)``.
    """
    if isinstance(labels, torch.Tensor) and labels.dim() == 3:
        expected = (image.shape[0], *image.shape[2:])
        if tuple(labels.shape) != expected:
            raise InputError(
                f"{name} is {tuple(labels.shape)} (B, H, W) but its image needs {expected}: "
                f"label maps must have their image's size"
            )
    size = mask_size(image.shape[2], image.shape[3], long_side)
    return labels_to_masks(labels, num_labels, size=size, dtype=image.dtype)
