"""A folder of photographs held in memory, small, for synthesising training pairs.

Photos are decoded once, shrunk to ``long_side`` (training crops are smaller still) and kept
as uint8; unreadable files are skipped and listed, not fatal. Splits into training and
validation go by a hash of the file name, so adding photos never moves the others.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dpst.errors import DpstError, InputError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
DEFAULT_LONG_SIDE = 256
# Superpixels per photo for the region masks (data.look_pairs): enough for 2-4 regions that
# follow the scene, few enough to cluster in microseconds.
SUPERPIXELS = 48


def stable_share(key: str) -> float:
    """A number in [0, 1) that depends on ``key`` only (its SHA-256): splits by file name
    that stay put when files are added. Keys below the validation fraction validate."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def validation_share(name: str) -> float:
    """:func:`stable_share` of a photo's file name."""
    return stable_share(Path(name).name)


@dataclass
class PhotoPool:
    """Photos as uint8 ``(H, W, 3)`` arrays, their superpixel maps and the skipped files."""

    names: list[str]
    photos: list[np.ndarray]
    problems: list[str] = field(default_factory=list)
    _superpixels: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, long_side: int = DEFAULT_LONG_SIDE):
        """Every readable photo of ``folder`` (not recursive), shrunk to ``long_side``.

        Raises:
            InputError: the folder is missing or holds no readable photo.
        """
        from dpst.imageio import read_image, resize_long_side, to_uint8

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder of photos")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        names, photos, problems = [], [], []
        for path in files:
            try:
                image = read_image(path)
            except DpstError as err:
                problems.append(str(err))
                continue
            if min(image.shape[:2]) < 16:
                problems.append(f"{path}: smaller than 16 px, skipped")
                continue
            names.append(path.name)
            photos.append(to_uint8(resize_long_side(image, long_side)))
        if not photos:
            raise InputError(f"{folder}: no readable photo ({len(problems)} file(s) skipped)")
        return cls(names, photos, problems)

    def __len__(self) -> int:
        return len(self.photos)

    def split(self, validation_fraction: float) -> tuple[PhotoPool, PhotoPool]:
        """``(train, validation)`` by file-name hash; both non-empty when possible."""
        val = [i for i, n in enumerate(self.names) if validation_share(n) < validation_fraction]
        if len(val) == len(self) and len(self) > 1:
            val = val[:1]
        train = [i for i in range(len(self)) if i not in set(val)]
        return self._subset(train), self._subset(val)

    def _subset(self, indices: list[int]) -> PhotoPool:
        return PhotoPool([self.names[i] for i in indices], [self.photos[i] for i in indices])

    def superpixels(self, index: int) -> np.ndarray:
        """SLIC superpixels of photo ``index`` as an int ``(H, W)`` map (computed once)."""
        if index not in self._superpixels:
            from skimage.segmentation import slic

            labels = slic(self.photos[index], n_segments=SUPERPIXELS, compactness=10,
                          start_label=0)  # fmt: skip
            self._superpixels[index] = labels.astype(np.int32)
        return self._superpixels[index]
