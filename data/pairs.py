"""From a folder of photos to a manifest of content/style pairs.

Every photo is decoded once (a photo that cannot be read is reported and left out). Masks
come from a folder (``masks/<name>.png`` beside ``photos/<name>.jpg``), from a segmenter
(cached next to the manifest, keyed by the photo's bytes and the segmenter's identity), or
not at all. With masks, pairs are chosen by the overlap of their semantic groups, so sky
meets sky; without, at random. Both are seeded: the same folder and seed give the same
manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpst.data.manifest import ASPECT_TOLERANCE, Entry, write_manifest
from dpst.errors import InputError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
PAIRING_MODES = ("auto", "random", "semantic")
# Label maps are stored as 16-bit greyscale PNGs: read_mask always reads those as labels
# (an 8-bit map that is all label 0 would look like the paper's black colour mask).
MAX_STORED_LABEL = 65535
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass
class PairingConfig:
    """How pairs are drawn. ``mode`` ``auto``: semantic when masks exist, else random."""

    per_content: int = 1  # style photos drawn for every content photo
    mode: str = "auto"
    # Semantic pairing draws among styles whose label histograms overlap the content's by
    # at least this much (histogram intersection, 1 = same proportions of the same labels);
    # when too few do, the best-overlapping ones fill in.
    min_overlap: float = 0.5
    seed: int = 0

    def validate(self) -> None:
        if self.per_content < 1:
            raise InputError(f"per_content must be at least 1, got {self.per_content}")
        if self.mode not in PAIRING_MODES:
            raise InputError(f"pairing mode must be one of {PAIRING_MODES}, got {self.mode!r}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise InputError(f"min_overlap must be in [0, 1], got {self.min_overlap}")


@dataclass
class Photo:
    path: Path
    key: str  # path under the photo folder without suffix, "/"-separated
    size: tuple[int, int]  # (H, W)
    mask: Path | None = None
    histogram: dict[int, float] | None = None


@dataclass
class PairsResult:
    entries: list[Entry]
    problems: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def list_photos(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by suffix), sorted; hidden files and folders skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of photos")
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in PHOTO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found)


def photo_key(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def safe_name(key: str) -> str:
    """A key as a file-name-safe id fragment (``a/b c`` -> ``a-b_c``)."""
    return _UNSAFE.sub("_", key.replace("/", "-")).lstrip(".-") or "photo"


def find_mask(masks_dir: Path, key: str) -> Path | None:
    """``masks_dir/<key>.<any image suffix>``, PNG first."""
    for suffix in (".png", *PHOTO_SUFFIXES):
        candidate = masks_dir / f"{key}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def label_histogram(labels: np.ndarray) -> dict[int, float]:
    """Fraction of the labelled pixels (label >= 0) carrying each label."""
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    total = counts.sum()
    if total == 0:
        return {}
    return {int(v): float(c / total) for v, c in zip(values, counts, strict=True)}


def overlap(a: dict[int, float], b: dict[int, float]) -> float:
    """Histogram intersection: how much of the two label distributions coincide, in [0, 1]."""
    return float(sum(min(p, b.get(k, 0.0)) for k, p in a.items()))


def choose_styles(
    n: int, config: PairingConfig, scores: np.ndarray | None = None
) -> list[list[int]]:
    """For each content ``i`` in ``range(n)``, the style indices paired with it (never ``i``).

    ``scores`` ``(n, n)``: overlaps for semantic pairing; None draws uniformly.
    """
    rng = np.random.default_rng(config.seed)
    k = min(config.per_content, n - 1)
    chosen: list[list[int]] = []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i], dtype=np.int64)
        if scores is None:
            picks = rng.choice(others, size=k, replace=False)
        else:
            s = scores[i, others]
            eligible = others[s >= config.min_overlap]
            if len(eligible) >= k:
                picks = rng.choice(eligible, size=k, replace=False)
            else:
                # Stable sort: equal scores keep folder order, so the result is seeded.
                rest = others[s < config.min_overlap][
                    np.argsort(-s[s < config.min_overlap], kind="stable")
                ]
                picks = np.concatenate([eligible, rest[: k - len(eligible)]])
        chosen.append([int(j) for j in picks])
    return chosen


def _segmenter_identity(segmenter) -> str:
    return json.dumps(segmenter.describe(), sort_keys=True, default=str)


def cached_auto_mask(photo: Photo, image: np.ndarray, segmenter, cache_dir: Path) -> Path:
    """Group labels of ``photo`` from ``segmenter``, as a greyscale PNG under ``cache_dir``.

    The file name carries a hash of the photo's bytes and the segmenter's identity, so a
    changed photo or another segmenter never reuses a stale mask.
    """
    import torch

    from dpst.imageio import to_tensor

    digest = hashlib.sha256(photo.path.read_bytes())
    digest.update(_segmenter_identity(segmenter).encode())
    path = cache_dir / f"{safe_name(photo.key)}.{digest.hexdigest()[:12]}.png"
    if path.is_file():
        return path
    with torch.inference_mode():
        _, groups = segmenter.predict_groups(to_tensor(image))
    write_label_map(path, groups[0].cpu().numpy())
    return path


def write_label_map(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write int labels ``(H,W)`` in [0, 65535] as a 16-bit greyscale PNG, atomically."""
    from PIL import Image

    from dpst.imageio import atomic_write

    if labels.size and (labels.min() < 0 or labels.max() > MAX_STORED_LABEL):
        raise ValueError(
            f"label maps are stored with labels in [0, {MAX_STORED_LABEL}], "
            f"got [{labels.min()}, {labels.max()}]"
        )
    img = Image.fromarray(labels.astype(np.uint16))
    atomic_write(Path(path), lambda fh: img.save(fh, format="PNG"))


def _load_photos(
    folder: Path,
    recursive: bool,
    masks_dir: Path | None,
    segmenter,
    cache_dir: Path,
    problems: list[str],
) -> list[Photo]:
    """Decode every photo (and mask); unreadable or mismatched ones become problems."""
    from dpst.imageio import read_image
    from dpst.labels.mask_files import read_mask

    photos: list[Photo] = []
    for path in list_photos(folder, recursive):
        key = photo_key(path, folder)
        try:
            image = read_image(path)
        except InputError as err:
            problems.append(f"photo skipped: {err}")
            continue
        photo = Photo(path, key, image.shape[:2])
        try:
            labels = None
            if masks_dir is not None:
                photo.mask = find_mask(masks_dir, key)
                if photo.mask is None:
                    problems.append(f"photo skipped: {path}: no mask {masks_dir}/{key}.png")
                    continue
                labels = _read_mask_checked(photo.mask, photo.size, read_mask)
            elif segmenter is not None:
                photo.mask = cached_auto_mask(photo, image, segmenter, cache_dir)
                labels = read_mask(photo.mask, size=photo.size)
        except InputError as err:
            problems.append(f"photo skipped: {err}")
            continue
        if labels is not None:
            photo.histogram = label_histogram(labels)
        photos.append(photo)
    return photos


def _read_mask_checked(path: Path, size: tuple[int, int], read_mask) -> np.ndarray:
    from dpst.imageio import open_image

    img = open_image(path)
    ra, rb = img.width / img.height, size[1] / size[0]
    if abs(ra - rb) > ASPECT_TOLERANCE * max(ra, rb):
        raise InputError(
            f"{path}: mask is {img.width}x{img.height} but its photo is {size[1]}x{size[0]}"
        )
    return read_mask(path, size=size)


def build_pairs(
    photo_dir: str | os.PathLike,
    manifest: str | os.PathLike,
    config: PairingConfig | None = None,
    *,
    masks_dir: str | os.PathLike | None = None,
    segmenter=None,
    recursive: bool = False,
) -> PairsResult:
    """Pair the photos of ``photo_dir`` and write the manifest (and ``<manifest>.json``).

    Args:
        masks_dir: a folder of masks named like the photos (colour masks or label maps).
        segmenter: a :class:`dpst.models.segmenter.Segmenter` for automatic masks, cached in
            ``<manifest stem>.masks/`` beside the manifest. Ignored when ``masks_dir`` is given.
    """
    config = config or PairingConfig()
    config.validate()
    folder = Path(photo_dir)
    manifest = Path(manifest)
    cache_dir = manifest.parent / f"{manifest.stem}.masks"
    problems: list[str] = []
    photos = _load_photos(
        folder, recursive, Path(masks_dir) if masks_dir else None, segmenter, cache_dir, problems
    )
    if len(photos) < 2:
        raise InputError(f"{folder}: need at least 2 readable photos to pair, found {len(photos)}")
    with_masks = all(p.histogram is not None for p in photos)
    mode = config.mode
    if mode == "auto":
        mode = "semantic" if with_masks else "random"
    if mode == "semantic" and not with_masks:
        raise InputError("semantic pairing needs masks: give --masks DIR or --segmenter")
    scores = None
    if mode == "semantic":
        n = len(photos)
        scores = np.array(
            [
                [overlap(photos[i].histogram, photos[j].histogram) for j in range(n)]
                for i in range(n)
            ]
        )
    entries: list[Entry] = []
    used: set[str] = set()
    for i, picks in enumerate(choose_styles(len(photos), config, scores)):
        c = photos[i]
        for j in picks:
            s = photos[j]
            pair_id = f"{safe_name(c.key)}__{safe_name(s.key)}"
            base, n_dup = pair_id, 1
            while pair_id in used:
                n_dup += 1
                pair_id = f"{base}-{n_dup}"
            used.add(pair_id)
            meta = {"overlap": round(float(scores[i, j]), 4)} if scores is not None else {}
            entries.append(Entry(pair_id, c.path, s.path, c.mask, s.mask, meta=meta))
    write_manifest(manifest, entries)
    report = {
        "photo_dir": str(folder),
        "photos": len(photos),
        "pairs": len(entries),
        "mode": mode,
        "masks": "folder" if masks_dir else ("segmenter" if segmenter is not None else "none"),
        "segmenter": segmenter.describe() if segmenter is not None and not masks_dir else None,
        "config": asdict(config),
        "problems": problems,
    }
    from dpst.imageio import write_json

    write_json(manifest.with_name(manifest.name + ".json"), report)
    return PairsResult(entries, problems, report)
