"""The paper's loss terms as pure functions, and the one objective object built on them.

Each term takes batch-first tensors and returns one value per batch element ``(B,)``; the
weights (docs/METHOD.md 2.6) live in :class:`LossWeights`. The same :class:`Objective` is
used by the optimiser and by the generator's training.

Conventions follow the published Lua code where the paper leaves room: the content loss is
a mean squared error, a style layer's Gram matrix of the masked features is divided by
``C * N * mbar``, and each label's squared Gram difference is weighted by the content mask's
mean. The total variation is ``0.5 * sum(dx^2 + dy^2)`` over the image in 0-255 scale, the
energy whose gradient the published ``TVLoss`` module computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dpst.optim_reference.masks import propagate_masks
from dpst.optim_reference.vgg_layout import CONTENT_LAYER, STYLE_LAYERS

# A label's Gram product is restricted to its mask's support when that covers at most this
# fraction of the positions; above it, the gather costs more than it saves.
SUPPORT_MAX_FRACTION = 0.75
# docs/METHOD.md 2.4: total variation is taken on the image in the 0-255 scale of the original.
TV_PIXEL_SCALE = 255.0


@dataclass
class LossWeights:
    """Weights of the objective's terms; the paper's defaults (tuned for Caffe VGG-19)."""

    content: float = 5.0
    style: float = 100.0
    tv: float = 1e-3
    photorealism: float = 1e4


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over entries of the squared feature difference.

    Args:
        features, target: ``(B, C, h, w)`` activations of the output and the content.

    Returns:
        ``(B,)``.
    """
    return (features - target).pow(2).flatten(1).mean(1)


class _Gram(torch.autograd.Function):
    """``X X^T`` for ``X`` of shape ``(B, C, N)``, with a one-product backward.

    Autograd's ``bmm`` backward would form two products (for ``X`` and ``X^T``); the Gram
    matrix's gradient is ``(dG + dG^T) X``, one product: a third of the style loss's
    matrix-product time saved.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.bmm(x, x.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), x)


def gram(x: torch.Tensor) -> torch.Tensor:
    """``X X^T`` for ``(B, C, N)`` features: ``(B, C, C)``."""
    return _Gram.apply(x)


def mask_supports(masks: torch.Tensor, max_fraction: float = SUPPORT_MAX_FRACTION):
    """Positions where each label's mask is non-zero, for :func:`masked_gram`.

    Args:
        masks: ``(1, K, h, w)``; a single image, since supports differ across a batch.

    Returns:
        A list of K index tensors into the flattened ``h * w`` positions, ``None`` for a
        label covering more than ``max_fraction`` of them (the dense product is then as
        cheap), or ``None`` altogether for a batch of several images.
    """
    if masks.shape[0] != 1:
        return None
    flat = masks[0].flatten(1)
    supports = []
    for m in flat:
        idx = torch.nonzero(m > 0).flatten()
        supports.append(idx if idx.numel() <= max_fraction * m.numel() else None)
    return supports


def masked_gram(
    features: torch.Tensor, masks: torch.Tensor, supports=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrices of the features masked by each label, normalised as in the paper.

    ``G_k = (F m_k)(F m_k)^T / (C * N * mbar_k)``, with no division where ``mbar_k = 0``
    (the Gram matrix is then zero anyway).

    Args:
        features: ``(B, C, h, w)``.
        masks: ``(B, K, h, w)`` in [0, 1], the labels' masks propagated to this layer.
        supports: optional, from :func:`mask_supports` (batch of one): each label's product
            then runs over the positions its mask covers only. The labels of a segmentation
            cover each position about once, so the K products cost about one dense product
            instead of K; the result is the same.

    Returns:
        ``grams`` ``(B, K, C, C)`` and ``mbar`` ``(B, K)``, each mask's mean value.
    """
    b, c, h, w = features.shape
    k = masks.shape[1]
    if masks.shape[0] != b or masks.shape[2:] != (h, w):
        raise ValueError(
            f"masks must be (B={b}, K, {h}, {w}) to match the features, got {tuple(masks.shape)}"
        )
    flat = features.reshape(b, c, h * w)
    flat_masks = masks.reshape(b, k, h * w)
    mbar = flat_masks.mean(2)
    norm = (c * h * w) * torch.where(mbar > 0, mbar, torch.ones_like(mbar))
    grams = []
    # One label at a time: the masked copies of all K labels at once would take K times the
    # memory of the largest activation.
    for j in range(k):
        idx = supports[j] if supports is not None else None
        if idx is None:
            masked = flat * flat_masks[:, j, None]
        else:
            masked = flat.index_select(2, idx) * flat_masks[:, j, idx][:, None]
        grams.append(gram(masked))
    return torch.stack(grams, 1) / norm[:, :, None, None], mbar


def style_layer_loss(
    grams: torch.Tensor, target_grams: torch.Tensor, content_mbar: torch.Tensor
) -> torch.Tensor:
    """One layer's segmented style loss: ``sum_k mbar_k * mean((G_k - T_k)^2)``.

    Args:
        grams: ``(B, K, C, C)`` of the output, built with the content's masks.
        target_grams: ``(B, K, C, C)`` of the style image, built with the style's masks.
        content_mbar: ``(B, K)`` mean of each content mask at this layer.

    Returns:
        ``(B,)``.
    """
    per_label = (grams - target_grams).pow(2).flatten(2).mean(2)
    return (per_label * content_mbar).sum(1)


def total_variation(image: torch.Tensor, scale: float = TV_PIXEL_SCALE) -> torch.Tensor:
    """``0.5 * sum(dx^2 + dy^2)`` of ``scale * image`` over the top-left (H-1, W-1) pixels.

    Args:
        image: ``(B, C, H, W)``, values in [0, 1] (not enforced).

    Returns:
        ``(B,)``.
    """
    x = image * scale
    dx = x[:, :, :-1, :-1] - x[:, :, :-1, 1:]
    dy = x[:, :, :-1, :-1] - x[:, :, 1:, :-1]
    return 0.5 * (dx.pow(2) + dy.pow(2)).flatten(1).sum(1)


def _style_targets(
    backbone: nn.Module, style: torch.Tensor, masks: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    feats = backbone(style, layers)
    layer_masks = propagate_masks(masks, layers)
    return {name: masked_gram(feats[name], layer_masks[name])[0] for name in layers}


class Objective(nn.Module):
    """The optimiser's objective for fixed content, style and masks.

    Everything that depends only on the inputs (content features, the style's masked Gram
    matrices, the content masks at every layer, the matting Laplacian) is computed once
    here; :meth:`forward` then costs one backbone pass of the output plus the small terms.

    Args:
        backbone: a :class:`~dpst.optim_reference.vgg.VGG19Features` (frozen).
        content: ``(B, 3, H, W)`` in [0, 1].
        style: ``(B, 3, Hs, Ws)`` in [0, 1].
        content_masks: ``(B, K, H, W)`` in [0, 1]; ``None`` means one region.
        style_masks: ``(B, K, Hs, Ws)``, the same K labels; ``None`` means one region.
        weights: the terms' weights.
        matting: a matting operator of ``content`` (``.energy(v) -> (B,)``), or ``None`` to
            leave the photorealism term out (it is then reported as zero).
    """

    def __init__(
        self,
        backbone: nn.Module,
        content: torch.Tensor,
        style: torch.Tensor,
        content_masks: torch.Tensor | None = None,
        style_masks: torch.Tensor | None = None,
        weights: LossWeights | None = None,
        matting=None,
        content_layer: str = CONTENT_LAYER,
        style_layers: Sequence[str] = STYLE_LAYERS,
    ):
        super().__init__()
        if content_masks is None:
            content_masks = content.new_ones(content.shape[0], 1, *content.shape[2:])
        if style_masks is None:
            style_masks = style.new_ones(style.shape[0], 1, *style.shape[2:])
        if content_masks.shape[1] != style_masks.shape[1]:
            raise ValueError(
                "content and style masks must have the same number of labels, got "
                f"{content_masks.shape[1]} and {style_masks.shape[1]}"
            )
        self.backbone = backbone
        self.weights = weights or LossWeights()
        self.matting = matting
        self.content_layer = content_layer
        self.style_layers = tuple(style_layers)
        self.layers = (*self.style_layers, content_layer)
        with torch.no_grad():
            self.content_target = backbone(content, [content_layer])[content_layer]
            self.style_targets = _style_targets(backbone, style, style_masks, self.style_layers)
            self.content_layer_masks = propagate_masks(content_masks, self.style_layers)
            self.supports = {name: mask_supports(m) for name, m in self.content_layer_masks.items()}

    def forward(
        self, image: torch.Tensor, weights: LossWeights | None = None
    ) -> dict[str, torch.Tensor]:
        """Every term of the objective for ``image`` ``(B, 3, H, W)``.

        Returns:
            A dict of ``(B,)`` tensors: the weighted terms ``content``, ``style``, ``tv``,
            ``photorealism`` and their sum ``total``. A term whose weight is 0 is not
            computed (its value is 0).
        """
        w = weights or self.weights
        feats = self.backbone(image, self.layers)
        zero = image.new_zeros(image.shape[0])
        terms: dict[str, torch.Tensor] = {}
        terms["content"] = w.content * content_loss(feats[self.content_layer], self.content_target)
        style = zero
        for name in self.style_layers:
            masks = self.content_layer_masks[name]
            grams, mbar = masked_gram(feats[name], masks, self.supports[name])
            style = style + style_layer_loss(grams, self.style_targets[name], mbar)
        terms["style"] = w.style * style
        terms["tv"] = w.tv * total_variation(image) if w.tv else zero
        if w.photorealism and self.matting is not None:
            terms["photorealism"] = w.photorealism * self.matting.energy(image)
        else:
            terms["photorealism"] = zero
        terms["total"] = terms["content"] + terms["style"] + terms["tv"] + terms["photorealism"]
        return terms


def as_floats(terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Batch-summed terms as plain floats, for reports and progress bars."""
    return {k: float(v.detach().sum()) for k, v in terms.items()}
