"""How close the generator comes to the optimiser, pair by pair (docs/METHOD.md section 5).

For every pair, at ``size`` px on the long side and under one backbone:

- the optimiser's objective (every term) of the generator's output and of the optimiser's
  own output (the manifest's ``target``, resized to the content; else the optimiser is run
  here with ``EvalConfig.optimiser``), and their ratio;
- PSNR and SSIM of the generator's output to the optimiser's (scikit-image's metrics,
  data range 1, SSIM over the colour channels), and SSIM of each output's luminance to the
  content's (structure kept);
- the photorealism energy ``sum_c V_c^T M V_c`` (unweighted) of both outputs;
- the generator's time per image (median of ``repeats`` after a warm-up, style encoding
  included) and, when known, the optimiser's.

:func:`evaluate` returns the rows and their means; :mod:`eval_report` writes the table,
CSV, JSON and PNG.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dpst.constants import LUMA_REC601
from dpst.data.manifest import Entry, check_entry
from dpst.devices import resolve_device
from dpst.errors import InputError
from dpst.imageio import from_tensor, read_image, resize_long_side, to_tensor, warn
from dpst.labels.mask_files import read_mask, resize_labels
from dpst.labels.policy import LabelPolicy
from dpst.optim_reference.losses import LossWeights, Objective
from dpst.optim_reference.matting import MattingLaplacian
from dpst.optim_reference.stylize import MattingConfig, StylizeConfig, stylize
from dpst.optim_reference.vgg import BackboneConfig
from dpst.train.objective import (
    build_objective,
    check_label_range,
    clean_labels,
    generator_masks,
)

TERMS = ("content", "style", "tv", "photorealism", "total")
# Backbone identity fields that say which weights were used.
IDENTITY_KEYS = ("name", "seed", "sha256", "preprocessing")


@dataclass
class EvalConfig:
    """Settings of ``dpst eval``; the objective's defaults are the paper's."""

    size: int = 256  # long side of content and style
    weights: LossWeights = field(default_factory=LossWeights)
    matting: MattingConfig = field(default_factory=MattingConfig)
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    optimiser: StylizeConfig = field(default_factory=StylizeConfig)  # for pairs with no target
    device: str = "auto"
    repeats: int = 3

    def validate(self) -> None:
        if self.size < 16:
            raise ValueError(f"size must be at least 16 px, got {self.size}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        self.labels.validate()


@dataclass
class EvalPair:
    """One pair at the evaluation size, on the CPU: images ``(1, 3, H, W)``, labels
    ``(1, H, W)`` after the label policy, the target resized to the content (or None)."""

    id: str
    content: torch.Tensor
    style: torch.Tensor
    content_labels: torch.Tensor
    style_labels: torch.Tensor
    raw_labels: tuple[np.ndarray, np.ndarray]  # before the policy, for the optimiser
    target: torch.Tensor | None = None
    target_report: dict[str, Any] | None = None


def resize_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def load_pair(entry: Entry, size: int, policy: LabelPolicy, check: bool = True) -> EvalPair:
    """Read a manifest pair at ``size`` px (long side); masks and target checked first.

    Raises:
        InputError: a missing or unreadable file, or a mask or target whose aspect ratio
            differs from its photo's (mismatched label maps).
    """
    if check:
        problems = check_entry(entry)
        if problems:
            raise InputError(f"pair {entry.id}: {problems[0]}")
    content, style = read_image(entry.content), read_image(entry.style)
    cl = read_mask(entry.content_mask, content.shape[:2])
    sl = read_mask(entry.style_mask, style.shape[:2])
    content, style = resize_long_side(content, size), resize_long_side(style, size)
    cl, sl = resize_labels(cl, content.shape[:2]), resize_labels(sl, style.shape[:2])
    try:
        ccl, csl = clean_labels(cl, sl, content, style, policy)
    except ValueError as err:
        raise InputError(f"pair {entry.id}: {err}") from None
    target = report = None
    if entry.target is not None:
        target = resize_to(to_tensor(read_image(entry.target)), content.shape[:2])
        sidecar = Path(entry.target).with_suffix(".json")
        if sidecar.is_file():
            try:
                report = json.loads(sidecar.read_text())
            except (OSError, json.JSONDecodeError):
                report = None
    return EvalPair(
        entry.id,
        to_tensor(content),
        to_tensor(style),
        torch.from_numpy(ccl)[None],
        torch.from_numpy(csl)[None],
        (cl, sl),
        target,
        report,
    )


def run_generator(model, pair: EvalPair, device: torch.device) -> torch.Tensor:
    """The generator's output ``(1, 3, H, W)`` on ``device``; InputError for bad labels."""
    cfg = model.config
    # After the label policy, as in training (see step.prepare_batch).
    check_label_range(pair.content_labels, cfg.max_labels, [pair.id], "content")
    check_label_range(pair.style_labels, cfg.max_labels, [pair.id], "style")
    content, style = pair.content.to(device), pair.style.to(device)
    cm = generator_masks(pair.content_labels, pair.content, cfg.max_labels, cfg.working_size)
    sm = generator_masks(pair.style_labels, pair.style, cfg.max_labels, cfg.working_size)
    with torch.inference_mode():
        return model(content, style, cm.to(device), sm.to(device))


def time_generator(model, pair: EvalPair, device: torch.device, repeats: int):
    """(output, median seconds of ``repeats`` runs after one warm-up)."""
    output = run_generator(model, pair, device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run_generator(model, pair, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return output, statistics.median(times)


def pair_objective(net, pair: EvalPair, config: EvalConfig, device: torch.device) -> Objective:
    weights = config.weights
    return build_objective(
        net,
        pair.content.to(device),
        pair.style.to(device),
        pair.content_labels,
        pair.style_labels,
        weights,
        config.matting,
    )


def photorealism_energy(objective: Objective, image: torch.Tensor, pair, config) -> float:
    """Unweighted ``sum_c V_c^T M V_c`` of ``image`` (the weighted term over its weight)."""
    matting = objective.matting
    if matting is None:
        m = config.matting
        matting = MattingLaplacian.build(pair.content, radius=m.radius, eps=m.eps, method=m.method)
    with torch.no_grad():
        return float(matting.energy(image.to(matting.device)).sum())


def _ssim(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    from skimage.metrics import structural_similarity

    # scikit-image's 7 px window, or the largest odd one that fits a smaller image.
    side = min(a.shape[:2])
    win = 7 if side >= 7 else max(1, side - (1 - side % 2))
    return float(structural_similarity(a, b, data_range=1.0, win_size=win, **kwargs))


def image_metrics(output: np.ndarray, reference: np.ndarray, content: np.ndarray) -> dict:
    """PSNR and SSIM of ``output`` to ``reference``, SSIM of its luminance to the content's."""
    from skimage.metrics import peak_signal_noise_ratio

    luma = np.asarray(LUMA_REC601, dtype=np.float32)  # for the structure-kept SSIM
    mse = float(np.mean((output - reference) ** 2))
    psnr = float("inf") if mse == 0 else peak_signal_noise_ratio(reference, output, data_range=1.0)
    return {
        "psnr": float(psnr),
        "ssim": _ssim(output, reference, channel_axis=2),
        "ssim_content_luma": _ssim(output @ luma, content @ luma),
    }


def _same_backbone(identity: dict, other: dict | None) -> bool:
    if not other:
        return True
    return all(identity.get(k) == other.get(k) for k in IDENTITY_KEYS if k in other)


def optimiser_output(pair: EvalPair, config: EvalConfig, network, device) -> tuple:
    """(image ``(1,3,H,W)``, seconds or None, source): the target, or the optimiser run now."""
    if pair.target is not None:
        report = pair.target_report or {}
        if not _same_backbone(network[1], report.get("backbone")):
            warn(
                f"pair {pair.id}: its target was optimised with backbone "
                f"{report.get('backbone')}, the evaluation uses {network[1]}"
            )
        return pair.target, report.get("seconds"), "target"
    cfg = replace(config.optimiser, size=config.size, device=str(device))
    result = stylize(
        from_tensor(pair.content),
        from_tensor(pair.style),
        *pair.raw_labels,
        cfg,
        network=network,
    )
    image = resize_to(to_tensor(result.image), tuple(pair.content.shape[-2:]))
    return image, result.report["seconds"], "optimiser"


def evaluate_pair(model, pair: EvalPair, network, config: EvalConfig, device) -> dict[str, Any]:
    """One row of the table (see the module docstring for the columns)."""
    gen, gen_seconds = time_generator(model, pair, device, config.repeats)
    opt, opt_seconds, source = optimiser_output(pair, config, network, device)
    gen, opt = gen.float().cpu(), opt.float().cpu()
    objective = pair_objective(network[0], pair, config, device)
    row: dict[str, Any] = {"id": pair.id}
    with torch.no_grad():
        terms_g = objective(gen.to(device))
        terms_o = objective(opt.to(device))
    for name in TERMS:
        row[f"gen_{name}"] = float(terms_g[name].sum())
        row[f"opt_{name}"] = float(terms_o[name].sum())
    row["objective_ratio"] = row["gen_total"] / max(row["opt_total"], 1e-12)
    row["gen_energy"] = photorealism_energy(objective, gen, pair, config)
    row["opt_energy"] = photorealism_energy(objective, opt, pair, config)
    row["energy_ratio"] = row["gen_energy"] / max(row["opt_energy"], 1e-12)
    content = from_tensor(pair.content)
    gen_np, opt_np = from_tensor(gen), from_tensor(opt)
    row.update(image_metrics(gen_np, opt_np, content))
    row["opt_ssim_content_luma"] = image_metrics(opt_np, opt_np, content)["ssim_content_luma"]
    row["gen_seconds"] = gen_seconds
    row["opt_seconds"] = opt_seconds
    row["opt_source"] = source
    row["size"] = list(pair.content.shape[-2:])
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means of every numeric column (finite values only), and the issue's two targets."""
    means: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        values = [v for v in values if np.isfinite(v)]
        if values and not isinstance(rows[0][key], bool):
            means[key] = float(np.mean(values))
    ratios = [r["objective_ratio"] for r in rows]
    means["objective_ratio_median"] = float(np.median(ratios))
    means["objective_ratio_max"] = float(np.max(ratios))
    means["pairs"] = len(rows)
    means["pairs_within_1_5x"] = sum(r <= 1.5 for r in ratios)
    means["pairs_energy_not_higher"] = sum(r["gen_energy"] <= r["opt_energy"] for r in rows)
    return means


def evaluate(
    model, entries: list[Entry], config: EvalConfig, network, progress=None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows for every pair (in manifest order) and their summary."""
    config.validate()
    if not entries:
        raise InputError("the manifest has no pairs to evaluate")
    device = resolve_device(config.device)
    model = model.to(device).eval()
    network = (network[0].to(device), network[1])
    rows = []
    for entry in entries:
        pair = load_pair(entry, config.size, config.labels)
        rows.append(evaluate_pair(model, pair, network, config, device))
        if progress is not None:
            progress(rows[-1])
    return rows, summarise(rows)


def config_dict(config: EvalConfig) -> dict[str, Any]:
    return asdict(config)
