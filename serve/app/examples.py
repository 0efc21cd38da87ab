"""The demo's examples: the pairs shipped in the package (:mod:`dpst.serve.examples`), each
with its region masks, which load with the photos (mask mode "upload")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpst.errors import InputError

# White gap between the two photos of a thumbnail, in pixels.
THUMBNAIL_GAP = 6


def example_count() -> int:
    from dpst.serve.examples import examples

    return len(examples())


def example_files(folder: Path, index: int, long_side: int) -> tuple[str, str, str, str]:
    """PNG files of example pair ``index`` in ``folder``, written on first use: (content,
    style, content mask, style mask). A photo is at most ``long_side`` px (never enlarged);
    its mask is at the photo's size (nearest neighbour, so its colours stay exact)."""
    from PIL import Image

    from dpst.imageio import atomic_write
    from dpst.serve.examples import examples

    pairs = examples()
    if not 0 <= index < len(pairs):
        raise InputError(f"no example {index}; there are {len(pairs)}")
    example = pairs[index]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for photo_file, mask_file in (
        (example.content, example.content_mask),
        (example.style, example.style_mask),
    ):
        with Image.open(photo_file) as photo, Image.open(mask_file) as mask:
            scale = min(1.0, long_side / max(photo.size))
            size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
            pictures = (
                (photo.convert("RGB").resize(size, Image.Resampling.LANCZOS), photo_file.stem),
                (mask.convert("RGB").resize(size, Image.Resampling.NEAREST), mask_file.stem),
            )
            for picture, stem in pictures:
                path = folder / f"{stem}-{long_side}.png"
                if not path.exists():  # atomic: safe if two requests write it
                    atomic_write(path, lambda fh, p=picture: p.save(fh, format="PNG"))
                paths.append(str(path))
    content, content_mask, style, style_mask = paths
    return content, style, content_mask, style_mask


def example_thumbnails(height: int = 120) -> list[tuple[np.ndarray, str]]:
    """One picture per pair (content | style, both ``height`` px tall) and its caption."""
    from dpst.imageio import resize_long_side
    from dpst.serve.examples import examples, read_photo

    def at_height(path: Path) -> np.ndarray:
        image = read_photo(path)
        h, w = image.shape[:2]
        return resize_long_side(image, round(height * max(h, w) / h))

    thumbs = []
    for example in examples():
        gap = np.ones((height, THUMBNAIL_GAP, 3), dtype=np.float32)
        picture = np.concatenate([at_height(example.content), gap, at_height(example.style)], 1)
        thumbs.append((picture, example.caption))
    return thumbs
