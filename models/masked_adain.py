"""Segment-wise feature statistics and region-by-region AdaIN (Huang and Belongie 2017).

Masks are soft: ``(B, K, h, w)`` floats in [0, 1], one channel per label, zero where the
label is absent. Statistics gain one extra channel, index K, over the whole image ("global"),
which is what unlabelled content pixels and labels missing from the style fall back to.

Per-label statistics are shrunk towards the global ones by a prior of ``prior_mass`` pixels
(a Bayesian-style pseudo-count): a label with no pixels gets exactly the global statistics,
one with a handful gets nearly them, and a large region is unaffected. This keeps every
statistic finite without branching on the data, which also keeps the graph exportable.
"""

from __future__ import annotations

import torch

STD_EPS = 1e-5


def masked_mean_std(
    features: torch.Tensor, masks: torch.Tensor, prior_mass: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the features under each mask, plus the global ones.

    Args:
        features: ``(B, C, h, w)``.
        masks: ``(B, K, h, w)`` weights in [0, 1] at the features' resolution.
        prior_mass: pseudo-count (in pixels, > 0) of global statistics mixed into each label.

    Returns:
        ``(mean, std)``, each ``(B, K + 1, C)``; index K is the global statistic. ``std``
        includes ``STD_EPS`` under the square root, so it is > 0.
    """
    batch, channels = features.shape[:2]
    flat = features.reshape(batch, channels, -1)
    weights = masks.reshape(batch, masks.shape[1], -1)
    global_mean = flat.mean(dim=2).unsqueeze(1)  # (B, 1, C)
    global_sq = (flat * flat).mean(dim=2).unsqueeze(1)
    mass = weights.sum(dim=2, keepdim=True) + prior_mass  # (B, K, 1)
    mean = (torch.bmm(weights, flat.transpose(1, 2)) + prior_mass * global_mean) / mass
    sq = (torch.bmm(weights, (flat * flat).transpose(1, 2)) + prior_mass * global_sq) / mass
    mean = torch.cat([mean, global_mean], dim=1)
    sq = torch.cat([sq, global_sq], dim=1)
    # E[f^2] - E[f]^2 loses a little precision but the features are O(1) and STD_EPS dominates
    # the error; clamping removes negative round-off.
    var = (sq - mean * mean).clamp(min=0)
    return mean, torch.sqrt(var + STD_EPS)


def assignment_weights(masks: torch.Tensor) -> torch.Tensor:
    """How much each pixel follows each label's statistics: ``(B, K + 1, h, w)``.

    Masks summing to more than 1 at a pixel are normalised; what is left below 1 goes to the
    global channel K, so the weights at every pixel sum to exactly 1.
    """
    total = masks.sum(dim=1, keepdim=True)
    labelled = masks / total.clamp(min=1)
    rest = 1 - labelled.sum(dim=1, keepdim=True)
    return torch.cat([labelled, rest], dim=1)


def masked_adain(
    features: torch.Tensor,
    weights: torch.Tensor,
    content_stats: tuple[torch.Tensor, torch.Tensor],
    style_stats: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Give each content region the style statistics of the same label.

    ``out = sum_k a_k * ((f - mu_c[k]) / sigma_c[k] * sigma_s[k] + mu_s[k])``, computed as a
    per-pixel scale and shift so that no ``(K + 1)``-fold copy of the features is built.

    Args:
        features: content features ``(B, C, h, w)``.
        weights: ``(B, K + 1, h, w)`` from :func:`assignment_weights`.
        content_stats, style_stats: ``(mean, std)`` pairs ``(B, K + 1, C)`` from
            :func:`masked_mean_std`.

    Returns:
        ``(B, C, h, w)``.
    """
    content_mean, content_std = content_stats
    style_mean, style_std = style_stats
    scale = style_std / content_std  # (B, K + 1, C)
    shift = style_mean - content_mean * scale
    pixel_scale = torch.einsum("bkhw,bkc->bchw", weights, scale)
    pixel_shift = torch.einsum("bkhw,bkc->bchw", weights, shift)
    return features * pixel_scale + pixel_shift
