"""The weight-free training objective of the look generator (no pretrained network).

Per pair, with ``O`` the generator's output, ``T`` the synthesised target, ``S`` the style:

- colour: mean ``|Lab(O) - Lab(T)|_1 / 100`` where the pair has a target (CIELAB: distances
  there follow perceived colour differences far better than in RGB);
- statistics: per content label, the squared distance between the Lab mean and covariance
  of ``O`` in that region and of ``S`` in the style region of the same label, weighted by
  the region's area (the whole image when there are no labels); the only term an unpaired
  pair (no target) trains through;
- photorealism: the matting-Laplacian energy of ``O`` on the content (docs/METHOD.md 2.5),
  per pixel, so that it does not grow with the crop size;
- range: the mean squared amount by which ``O`` leaves [0, 1] before its clamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dpst.models.colour_transfer import masked_colour_stats
from dpst.models.label_masks import labels_to_masks

LAB_SCALE = 100.0  # Lab / 100: L in [0, 1], a and b roughly in [-1, 1]
# Pseudo-count (share of pixels) of whole-image statistics in each region's, as the
# generator's stat_prior does: keeps tiny regions' covariances sane.
STAT_PRIOR = 0.01


@dataclass
class LookLossWeights:
    """Weights of the terms above; the defaults are the shipped model's."""

    colour: float = 1.0
    statistics: float = 1.0
    photorealism: float = 10.0
    range_penalty: float = 10.0
    matting_eps: float = 1e-5  # of the photorealism term's Laplacian (the paper: 1e-7)


def to_lab(image: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` sRGB in [0, 1] -> CIELAB (D65) divided by :data:`LAB_SCALE`."""
    from kornia.color import rgb_to_lab

    return rgb_to_lab(image.clamp(0, 1)) / LAB_SCALE


def statistics_distance(
    output_lab: torch.Tensor,
    style_lab: torch.Tensor,
    content_labels: torch.Tensor,
    style_labels: torch.Tensor,
    num_labels: int,
) -> torch.Tensor:
    """``(B,)``: area-weighted squared distance of per-label Lab means and covariances.

    Args:
        output_lab, style_lab: ``(B, 3, H, W)`` and ``(B, 3, Hs, Ws)``, Lab / 100.
        content_labels, style_labels: int64 ``(B, H, W)`` and ``(B, Hs, Ws)``, -1 unlabelled.
        num_labels: label ids are in ``[-1, num_labels)``.
    """
    masks_o = labels_to_masks(content_labels, num_labels, dtype=output_lab.dtype)
    masks_s = labels_to_masks(style_labels, num_labels, dtype=style_lab.dtype)
    prior_o = STAT_PRIOR * output_lab.shape[2] * output_lab.shape[3]
    prior_s = STAT_PRIOR * style_lab.shape[2] * style_lab.shape[3]
    mean_o, cov_o = masked_colour_stats(output_lab, masks_o, prior_o)
    mean_s, cov_s = masked_colour_stats(style_lab, masks_s, prior_s)
    area = masks_o.flatten(2).mean(2)  # (B, K)
    weights = torch.cat([area, 1 - area.sum(1, keepdim=True).clamp(max=1)], dim=1)
    distance = (mean_o - mean_s).square().sum(-1) + (cov_o - cov_s).square().sum((-2, -1))
    return (weights * distance).sum(1)


def look_loss(
    output: torch.Tensor,
    overshoot: torch.Tensor,
    batch: dict,
    weights: LookLossWeights,
    num_labels: int,
    matting=None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``(loss, logs)`` for a batch of outputs ``(B, 3, H, W)``.

    Args:
        overshoot: ``(B,)`` from :func:`dpst.models.generator.range_overshoot`.
        batch: ``content``, ``style``, ``target``, ``content_labels``, ``style_labels``,
            ``has_target`` as :class:`dpst.data.look_pairs.LookSampler` gives them, batched.
        matting: a :class:`~dpst.optim_reference.matting.MattingLaplacian` of the contents,
            or None to skip the photorealism term.
    """
    has = batch["has_target"].to(output.dtype)
    output_lab = to_lab(output)
    colour = (output_lab - to_lab(batch["target"])).abs().flatten(1).mean(1)
    colour = (colour * has).sum() / has.sum().clamp_min(1)
    stats = statistics_distance(
        output_lab, to_lab(batch["style"]), batch["content_labels"], batch["style_labels"],
        num_labels,
    ).mean()  # fmt: skip
    loss = weights.colour * colour + weights.statistics * stats
    logs = {"colour_l1_lab": float(colour.detach()), "statistics": float(stats.detach())}
    if matting is not None and weights.photorealism:
        pixels = output.shape[2] * output.shape[3]
        energy = matting.energy(output).mean() / pixels
        loss = loss + weights.photorealism * energy
        logs["photorealism"] = float(energy.detach())
    range_term = overshoot.mean()
    loss = loss + weights.range_penalty * range_term
    logs["range_overshoot"] = float(range_term.detach())
    logs["loss"] = float(loss.detach())
    return loss, logs
