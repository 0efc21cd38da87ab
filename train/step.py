"""One training step: a batch from the loader -> the loss -> one clipped Adam update.

The loss is :class:`~dpst.train.config.TrainConfig`'s: the optimiser's objective of the
generator's output (relative to a reference pair's, see there) plus an L1 distillation term
to the optimiser's targets where the pair has one.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch

from dpst.errors import InputError
from dpst.models.bilateral_grid import grid_roughness
from dpst.train.config import TrainConfig
from dpst.train.objective import (
    build_objective,
    check_label_range,
    clean_labels,
    generator_masks,
    objective_ratio,
)

TERMS = ("content", "style", "tv", "photorealism", "total")
LOG_FLOOR = 1e-12


def prepare_batch(sample: dict[str, Any], config: TrainConfig, device: torch.device) -> dict:
    """Labels through the optimiser's policy, checked against the model, masks built.

    Raises:
        InputError: a label outside ``[-1, max_labels)``, or label maps the policy rejects;
            the message names the pair.
    """
    ids = list(sample["id"])
    content, style = sample["content"], sample["style"]
    cls, sls = [], []
    for i, pair_id in enumerate(ids):
        try:
            cl, sl = clean_labels(
                sample["content_mask"][i].numpy(),
                sample["style_mask"][i].numpy(),
                content[i].permute(1, 2, 0).numpy(),
                style[i].permute(1, 2, 0).numpy(),
                config.labels,
            )
        except ValueError as err:
            raise InputError(f"pair {pair_id}: {err}") from None
        cls.append(cl)
        sls.append(sl)
    content_labels = torch.from_numpy(np.stack(cls))
    style_labels = torch.from_numpy(np.stack(sls))
    # After the label policy: a label it merges away (a few stray pixels of an unusual mask
    # colour) or remaps to a style label never reaches the model.
    k, size = config.model.max_labels, config.model.working_size
    check_label_range(content_labels, k, ids, "content")
    check_label_range(style_labels, k, ids, "style")
    return {
        "ids": ids,
        "content": content.to(device),
        "style": style.to(device),
        "target": sample["target"].to(device),
        "has_target": torch.as_tensor(sample["has_target"], dtype=torch.bool).to(device),
        "content_labels": content_labels,
        "style_labels": style_labels,
        "content_masks": generator_masks(content_labels, content, k, size).to(device),
        "style_masks": generator_masks(style_labels, style, k, size).to(device),
    }


def autocast_context(config: TrainConfig, device: torch.device):
    """Mixed precision for the generator on CUDA (never on the CPU)."""
    if device.type != "cuda" or not config.amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def compute_loss(model, net, batch: dict, config: TrainConfig, device: torch.device):
    """``(loss, output, logs)`` for a prepared batch; ``logs`` holds batch means as floats."""
    objective = build_objective(
        net,
        batch["content"],
        batch["style"],
        batch["content_labels"],
        batch["style_labels"],
        config.weights,
        config.matting,
    )
    with autocast_context(config, device):
        output, grid, overshoot = model(
            batch["content"],
            batch["style"],
            batch["content_masks"],
            batch["style_masks"],
            return_details=True,
        )
    # The objective stays in float32: the Gram matrices of Caffe-scale (0-255) features
    # overflow float16, and bfloat16 loses the small differences the style term measures.
    output = output.float()
    terms = objective(output)
    has = batch["has_target"]
    if config.normalize_objective:
        reference = torch.where(has[:, None, None, None], batch["target"], batch["content"])
        with torch.no_grad():
            ref_total = objective(reference)["total"]
    else:
        ref_total = torch.ones_like(terms["total"])
    ratio = objective_ratio(terms, ref_total)
    # The objective is a sum of squares and a PSD form, so the ratio is non-negative; the
    # floor only keeps a zero objective (a constant crop) from giving log(0).
    per_pair = torch.log(ratio.clamp_min(LOG_FLOOR)) if config.log_ratio else ratio
    l1 = (output - batch["target"]).abs().flatten(1).mean(1)
    count = has.sum()
    distill = (l1 * has).sum() / count.clamp_min(1)
    roughness = grid_roughness(grid.float())
    loss = config.objective_weight * per_pair.mean() + config.distill_weight * distill
    if config.grid_smoothness:
        loss = loss + config.grid_smoothness * roughness.mean()
    overshoot = overshoot.float()
    if config.range_penalty:
        loss = loss + config.range_penalty * overshoot.mean()
    logs = {f"objective/{k}": float(terms[k].detach().mean()) for k in TERMS}
    logs["objective_ratio"] = float(ratio.detach().mean())
    logs["distill_l1"] = float(distill.detach()) if int(count) else float("nan")
    logs["grid_roughness"] = float(roughness.detach().mean())
    logs["range_overshoot"] = float(overshoot.detach().mean())
    logs["loss"] = float(loss.detach())
    return loss, output.detach(), logs


def optimiser_step(loss, model, optimizer, scheduler, scaler, config: TrainConfig) -> dict:
    """Backward, unscale, clip, step (skipped when the gradient is not finite)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    limit = config.clip_norm if config.clip_norm > 0 else math.inf
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))
    skipped = not math.isfinite(norm)
    if not skipped:
        scaler.step(optimizer)
    scaler.update()
    lr = optimizer.param_groups[0]["lr"]
    scheduler.step()
    return {"grad_norm": norm, "lr": lr, "skipped": float(skipped)}
