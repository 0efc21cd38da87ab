"""Validation during training: held-out pairs, scored as ``dpst eval`` scores them.

The pairs, their objectives (content features, style Gram targets, matting Laplacian) and
their reference values are computed once, at the first validation; each later validation
costs one generator pass and one backbone pass per pair.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from dpst.data.manifest import Entry
from dpst.train.evaluate import EvalConfig, load_pair, pair_objective, run_generator

# Validation images shown in TensorBoard.
SHOWN_PAIRS = 4


def split_validation(entries: list[Entry], count: int) -> tuple[list[Entry], list[Entry]]:
    """(training, held-out) pairs: the ``count`` pairs whose id hashes lowest are held out.

    Hashing the id (not the line number) keeps a pair on the same side when the manifest
    grows or is reordered.
    """
    if count <= 0:
        return entries, []
    order = sorted(entries, key=lambda e: hashlib.sha256(e.id.encode()).hexdigest())
    held = {e.id for e in order[:count]}
    return [e for e in entries if e.id not in held], [e for e in entries if e.id in held]


class Validation:
    """``validation(model) -> (scalars, images)`` over ``entries`` at ``size`` px."""

    def __init__(self, entries: list[Entry], config: EvalConfig, network, device) -> None:
        self.entries = entries
        self.config = config
        self.network = network
        self.device = device
        self._prepared: list | None = None

    def _prepare(self) -> list:
        prepared = []
        for entry in self.entries:
            pair = load_pair(entry, self.config.size, self.config.labels, check=False)
            objective = pair_objective(self.network[0], pair, self.config, self.device)
            reference = pair.target if pair.target is not None else pair.content
            with torch.no_grad():
                ref_terms = objective(reference.to(self.device))
            prepared.append((pair, objective, {k: float(v) for k, v in ref_terms.items()}))
        return prepared

    def __call__(self, model) -> tuple[dict[str, float], list[torch.Tensor]]:
        if self._prepared is None:
            self._prepared = self._prepare()
        was_training = model.training
        model.eval()
        ratios, l1s, photo, images = [], [], [], []
        try:
            for pair, objective, reference in self._prepared:
                output = run_generator(model, pair, self.device).float()
                with torch.no_grad():
                    terms = objective(output)
                ratios.append(float(terms["total"]) / max(reference["total"], 1e-12))
                if reference["photorealism"] > 0:
                    photo.append(float(terms["photorealism"]) / reference["photorealism"])
                if pair.target is not None:
                    l1s.append(float((output.cpu() - pair.target).abs().mean()))
                if len(images) < SHOWN_PAIRS:
                    images.append(output.cpu()[0])
        finally:
            model.train(was_training)
        scalars = {"val/objective_ratio": float(np.mean(ratios))}
        if photo:
            scalars["val/photorealism_ratio"] = float(np.mean(photo))
        if l1s:
            scalars["val/l1_to_target"] = float(np.mean(l1s))
        return scalars, images
