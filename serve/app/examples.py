"""The demo's bundled examples: pairs of scikit-image's photos (nothing is committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpst.errors import InputError

# (content, style) pairs, in the order the page shows them.
EXAMPLE_PAIRS = (("rocket", "coffee"), ("chelsea", "astronaut"), ("coffee", "rocket"))
# White gap between the two photos of a thumbnail, in pixels.
THUMBNAIL_GAP = 6


def example_files(folder: Path, index: int, long_side: int) -> tuple[str, str]:
    """PNG files of example pair ``index`` in ``folder`` (written on first use)."""
    from dpst.data.samples import sample_image
    from dpst.imageio import write_image

    if not 0 <= index < len(EXAMPLE_PAIRS):
        raise InputError(f"no example {index}; there are {len(EXAMPLE_PAIRS)}")
    paths = []
    for name in EXAMPLE_PAIRS[index]:
        path = folder / f"{name}-{long_side}.png"
        if not path.exists():
            write_image(path, sample_image(name, long_side))  # atomic: safe if two write
        paths.append(str(path))
    return paths[0], paths[1]


def example_thumbnails(height: int = 120) -> list[tuple[np.ndarray, str]]:
    """One picture per pair (content | style, both ``height`` px tall) and its caption."""
    from dpst.data.samples import sample_image
    from dpst.imageio import resize_long_side

    def at_height(name: str) -> np.ndarray:
        image = sample_image(name, None)
        h, w = image.shape[:2]
        return resize_long_side(image, round(height * max(h, w) / h))

    thumbs = []
    for content, style in EXAMPLE_PAIRS:
        gap = np.ones((height, THUMBNAIL_GAP, 3), dtype=np.float32)
        picture = np.concatenate([at_height(content), gap, at_height(style)], axis=1)
        thumbs.append((picture, f"{content} + {style}"))
    return thumbs
