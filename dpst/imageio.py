"""Reading and writing images and reports: the one place where files become arrays.

Everything here works on NumPy arrays and needs no torch, so the torch-free runtime can use
it. Images in memory are ``float32`` arrays of shape ``(H, W, 3)`` in [0, 1], RGB; the
torch side converts them with :func:`to_tensor` and :func:`from_tensor`.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dpst.errors import InputError

# Modes whose samples are wider than 8 bits; Pillow's convert("RGB") would clip them.
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file, with EXIF orientation applied, or raise a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError:
        # Pillow refuses images over twice MAX_IMAGE_PIXELS before decoding them: a guard
        # against files built to exhaust memory, and beyond what any command here can hold.
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise InputError(
            f"{path}: too large to open safely (over {limit:.0f} megapixels); shrink it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: not a readable image ({err.__class__.__name__})") from None
    return img


def pil_to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any Pillow image (grey, RGBA, palette, 16-bit, CMYK, float) as float32 (H,W,3) in [0,1].

    Alpha is dropped (composited on nothing: the colour channels are kept as they are).
    """
    if img.mode in _WIDE_MODES:
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I") else max(float(arr.max()), 1.0)
        if img.mode.startswith("I") and arr.max() <= 255:
            hi = 255.0
        arr = np.clip(arr / hi, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 ``(H, W, 3)`` in [0, 1], RGB, EXIF orientation applied."""
    return pil_to_rgb_array(open_image(path))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8, rounding to nearest."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(binary_file)`` on a temporary file in the same folder, then rename it
    over ``path``: readers see the old file or the whole new one, never a partial write.

    The file gets the usual permissions (0666 less the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The formats write_image writes, by suffix: 8-bit RGB, which each of them stores as is.
IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format :func:`write_image` uses for ``path``, or a one-line InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        known = " ".join(IMAGE_FORMATS)
        what = f"unknown image format {suffix!r}" if suffix else "no file extension"
        raise InputError(f"{path}: {what} (an image output ends in one of {known})")
    return IMAGE_FORMATS[suffix]


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a float (H,W,3) image in [0,1] (or uint8) atomically; format from the suffix."""
    fmt = image_format(path)
    arr = image if image.dtype == np.uint8 else to_uint8(image)
    img = Image.fromarray(arr)
    atomic_write(path, lambda fh: img.save(fh, format=fmt))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically, with a trailing newline."""
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode()
    atomic_write(path, lambda fh: fh.write(data))


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resize a float32 (H,W,3) image in [0,1] so its longer side is ``long_side`` (Lanczos).

    Each channel is resized in 32-bit float, so nothing is lost to 8-bit rounding.
    """
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F").resize(
                size, Image.Resampling.LANCZOS
            )
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0).astype(np.float32)


def to_tensor(image: np.ndarray):
    """(H,W,3) float array in [0,1] -> torch float32 tensor (1,3,H,W). Imports torch lazily."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def from_tensor(tensor) -> np.ndarray:
    """torch tensor (1,3,H,W) or (3,H,W) in [0,1] -> float32 (H,W,3) NumPy array."""
    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got batch size {t.shape[0]}")
        t = t[0]
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def warn(message: str) -> None:
    """A user-facing warning: one line, no source location."""
    warnings.warn(message, UserWarning, stacklevel=2)
