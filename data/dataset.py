"""A torch ``Dataset`` over a manifest: decoded pairs, masks and targets, augmented.

Every sample has the same keys so that batches collate: pairs without masks get one region
(label 0 everywhere, as ``read_mask(None)`` gives), pairs without a target get zeros and
``has_target`` False. Augmentation is seeded by (seed, epoch, index), so a run is repeatable
and every epoch sees other crops (call :meth:`PairDataset.set_epoch`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from dpst.data.augment import PairAugment
from dpst.data.manifest import Entry, read_manifest
from dpst.errors import InputError

# Mixes (seed, epoch, index) into one augmentation seed per sample.
_SEED_STRIDE = 1_000_003


class PairDataset(torch.utils.data.Dataset):
    """Samples of ``content``, ``style`` (float ``(3,H,W)`` in [0,1]), ``content_mask``,
    ``style_mask`` (int64 ``(H,W)``), ``target`` (float ``(3,H,W)``), ``has_target`` and ``id``.

    Without ``augment`` the images keep their own sizes (use batch size 1).
    Bad manifest lines raise :class:`InputError` listing them (``dpst data check`` finds them).
    """

    def __init__(
        self,
        manifest: str | os.PathLike | list[Entry],
        augment: PairAugment | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(manifest, list):
            self.entries = manifest
        else:
            self.entries, problems = read_manifest(manifest)
            if problems:
                listed = "; ".join(str(p) for p in problems[:3])
                raise InputError(f"{manifest}: {len(problems)} bad line(s): {listed}")
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> dict[str, Any]:
        """The pair as NumPy arrays at the files' sizes (target resized by the augmenter)."""
        from dpst.imageio import read_image
        from dpst.labels.mask_files import read_mask

        entry = self.entries[index]
        content = read_image(entry.content)
        style = read_image(entry.style)
        return {
            "content": content,
            "style": style,
            "content_mask": read_mask(entry.content_mask, content.shape[:2]),
            "style_mask": read_mask(entry.style_mask, style.shape[:2]),
            "target": read_image(entry.target) if entry.target is not None else None,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load(index)
        if self.augment is not None:
            seed = (self.seed * _SEED_STRIDE + self.epoch) * _SEED_STRIDE + index
            sample = self.augment(sample, seed % 2**32)
        target = sample["target"]
        has_target = target is not None
        if not has_target:
            target = np.zeros_like(sample["content"])
        return {
            "id": self.entries[index].id,
            "content": _chw(sample["content"]),
            "style": _chw(sample["style"]),
            "content_mask": torch.from_numpy(np.ascontiguousarray(sample["content_mask"])),
            "style_mask": torch.from_numpy(np.ascontiguousarray(sample["style_mask"])),
            "target": _chw(target),
            "has_target": has_target,
        }


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
