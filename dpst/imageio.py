"""Reading and writing images and reports: the one place where files become arrays.

Everything here works on NumPy arrays and needs no torch, so the torch-free runtime can use
it. Images in memory are ``float32`` arrays of shape ``(H, W, 3)`` in [0, 1], RGB; the
torch side converts them with :func:`to_tensor` and :func:`from_tensor`.

What a photo file holds beyond one opaque RGB picture is settled here, once for every
command: transparency is flattened onto white (:data:`BACKGROUND`, as an editor flattens a
layer; :func:`read_image` says so in one line), so that the colours hidden under alpha 0
never reach a result; an animation (GIF, APNG, WebP of several frames) is refused rather
than cut to its first frame. Outputs are opaque 8-bit RGB in the formats of
:mod:`dpst.image_formats`.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dpst.errors import InputError
from dpst.image_formats import IMAGE_FORMATS, listed

# Modes whose samples are wider than 8 bits; Pillow's convert("RGB") would clip them.
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# Modes with an alpha channel ("RGBa", "La": premultiplied); other modes may carry a
# transparent colour or palette entry in ``info["transparency"]`` instead.
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# Formats whose files may hold an animation. Multi-page TIFF (page 1 is the picture) and
# MPO (a camera JPEG with a preview or depth image after it) are photos, so not these.
_ANIMATION_FORMATS = {"GIF", "PNG", "WEBP"}
# Where a photo is transparent it is seen against this (RGB in [0, 1]): white, as an
# editor flattens a layer onto its white background.
BACKGROUND = (1.0, 1.0, 1.0)


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
            refuse_animation(img, str(path))
            img = ImageOps.exif_transpose(img)
    except InputError:
        raise  # an animation, said as such (InputError is a ValueError too)
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


def refuse_animation(img: Image.Image, name: str) -> None:
    """A one-line InputError naming ``name`` when ``img`` is an animation (GIF, APNG, WebP of
    several frames): every front end (commands, the demo) refuses what the others refuse."""
    frames = getattr(img, "n_frames", 1) if img.format in _ANIMATION_FORMATS else 1
    if frames > 1:
        # Frame 0 of a clip is rarely the picture meant, and styling it silently hides that.
        raise InputError(
            f"{name}: an animation ({frames} frames), not a still photo: save the frame you "
            "want as a PNG or JPEG and give that, or restyle the clip with dpst video"
        )


def opacity(img: Image.Image) -> np.ndarray | None:
    """Alpha as float32 ``(H, W)`` in [0, 1], or None when every pixel is opaque (no alpha
    channel, no transparent colour, or an alpha channel that is 255 everywhere)."""
    if img.mode in _WIDE_MODES or (img.mode not in _ALPHA_MODES and "transparency" not in img.info):
        return None  # (a 16-bit grey PNG's transparent value is not honoured: Pillow would clip)
    alpha = np.asarray(img.convert("RGBA").getchannel("A"))
    if alpha.min() == 255:
        return None
    return alpha.astype(np.float32) / 255.0


def pil_to_rgb_array(
    img: Image.Image, background: tuple[float, float, float] = BACKGROUND
) -> np.ndarray:
    """Any Pillow image (grey, RGBA, palette, 16-bit, CMYK, float) as float32 (H,W,3) in [0,1].

    Transparent and translucent pixels are composited over ``background`` (white), so that
    the colours stored under alpha 0, which no viewer shows, play no part.
    """
    alpha = opacity(img)
    if alpha is not None:
        rgb = np.asarray(img.convert("RGBA"), dtype=np.float32)[..., :3] / 255.0
        a = alpha[..., None]
        return (rgb * a + np.asarray(background, np.float32) * (1.0 - a)).astype(np.float32)
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
    """Read an image file as float32 ``(H, W, 3)`` in [0, 1], RGB, EXIF orientation applied;
    transparency flattened onto white, with a one-line warning."""
    img = open_image(path)
    alpha = opacity(img)
    if alpha is not None:
        hidden = float((alpha < 1.0).mean())
        warn(
            f"{path}: {_percent(hidden)} of the pixels are transparent or translucent; "
            "read as flattened onto white (the output is opaque)"
        )
    return pil_to_rgb_array(img)


def _percent(fraction: float) -> str:
    # "0%" or "100%" would misstate a few pixels; say "under 1%" / "over 99%" instead.
    if 0.0 < fraction < 0.01:
        return "under 1%"
    if 0.99 < fraction < 1.0:
        return "over 99%"
    return f"{fraction:.0%}"


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8, rounding to nearest."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def current_umask() -> int:
    """The process's umask (read by setting it and back: there is no getter)."""
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
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_files(files: list[tuple[str | os.PathLike, bytes]]) -> None:
    """Write several files as one: each to a temporary beside it, then all renamed into place.
    A write that fails (a full disk) leaves every file as it was, so a ``.cube`` is never
    written without the Hald CLUT asked for with it."""
    done: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            done.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~current_umask())
        for tmp, path in done:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in done:
            Path(tmp).unlink(missing_ok=True)
        raise


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format :func:`write_image` uses for ``path``, or a one-line InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        what = f"unknown image format {suffix!r}" if suffix else "no file extension"
        raise InputError(f"{path}: {what} (an image output ends in {listed()})")
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

    Each channel is resized in 32-bit float, so nothing is lost to 8-bit rounding. A uint8
    image (as :func:`read_photo` gives) is resized in 8 bits and returned as float32 in [0,1]:
    only the copy at the size asked is ever float, not a large photo.
    """
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.dtype == np.uint8:
        if size != (w, h):
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
        return image.astype(np.float32) / np.float32(255)
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


# Saved with every photo written by write_photo: near-lossless for photographers (Pillow's
# default JPEG quality, 75, visibly bands skies).
PHOTO_SAVE_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
# Formats that store an ICC profile and EXIF data through Pillow.
_KEEPS_ICC = {"JPEG", "PNG", "TIFF", "WEBP"}
_KEEPS_EXIF = {"JPEG", "PNG", "WEBP"}


@dataclass(frozen=True)
class Photo:
    """A photo as batch jobs carry it: 8-bit pixels (a quarter of float32's memory), upright,
    with what must travel to the output: its colour profile and its EXIF data (orientation
    already applied and reset, so viewers do not turn the result again)."""

    pixels: np.ndarray  # uint8 (H, W, 3)
    icc_profile: bytes | None = None
    exif: bytes | None = None


def read_photo(path: str | os.PathLike) -> Photo:
    """:func:`read_image` as 8-bit pixels, with the file's ICC profile and EXIF data."""
    img = open_image(path)
    if opacity(img) is not None or img.mode in _WIDE_MODES:
        pixels = to_uint8(read_image(path))  # flattened or scaled as read_image does
    else:
        pixels = np.asarray(img.convert("RGB"))
    return Photo(pixels, img.info.get("icc_profile") or None, img.info.get("exif") or None)


def write_photo(path: str | os.PathLike, photo: Photo) -> None:
    """Write 8-bit pixels atomically, keeping the ICC profile and EXIF data where the format
    stores them; JPEG and WebP at quality 95."""
    fmt = image_format(path)
    options = dict(PHOTO_SAVE_OPTIONS.get(fmt, {}))
    if photo.icc_profile and fmt in _KEEPS_ICC:
        options["icc_profile"] = photo.icc_profile
    if photo.exif and fmt in _KEEPS_EXIF:
        options["exif"] = photo.exif
    img = Image.fromarray(photo.pixels)
    atomic_write(path, lambda fh: img.save(fh, format=fmt, **options))
