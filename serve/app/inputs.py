"""What the demo receives, made safe: capped photo reads, mask files, painted masks, labels.

Everything a person uploads passes through here before any model sees it, and every failure
is a one-line :class:`~dpst.errors.InputError` naming the input ("content photo", "style
mask") rather than the server's temporary file. No Gradio and no torch at import time, so the
callbacks' input handling is testable on its own.

Painted masks: the page's editor offers the paper's colours; each editor layer is an RGBA
image, transparent where nothing was painted. Painted pixels decode to the index of their
colour in ``MASK_PALETTE`` (as colour-mask files do); unpainted pixels form one more region,
``UNPAINTED``, shared by both photos, so "paint the sky blue in both" means exactly that and
the rest of each photo is matched to the rest of the other.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dpst.constants import UNLABELLED
from dpst.errors import InputError
from dpst.imageio import pil_to_rgb_array, refuse_animation
from dpst.labels.mask_files import decode_colour_mask, read_mask, resize_labels

# Label of the pixels no layer painted; past every palette index (the palette has 21).
UNPAINTED = 1000
# A layer pixel counts as painted from half opacity on: the brush's anti-aliased rim below it
# belongs to the unpainted region rather than to a blend of colours.
PAINT_ALPHA = 128


def payload_path(payload: Any) -> str | None:
    """The file path in a Gradio file payload (dict with ``path``), a plain path, or None."""
    if payload is None:
        return None
    if isinstance(payload, (str, os.PathLike)):
        return os.fspath(payload)
    if isinstance(payload, Mapping):
        path = payload.get("path")
        return None if path is None else os.fspath(path)
    path = getattr(payload, "path", None)
    return None if path is None else os.fspath(path)


def _open_capped(path: str, what: str, max_pixels: int) -> Image.Image:
    """Open and decode an image file, refusing more than ``max_pixels`` before decoding."""
    check_photo(path, what, max_pixels)
    try:
        with Image.open(path) as img:
            img.load()
            refuse_animation(img, what)  # as the commands do; named, not the temp file
            return ImageOps.exif_transpose(img)
    except InputError:
        raise  # an animation, said as such (InputError is a ValueError too)
    except Image.DecompressionBombError:
        raise InputError(f"{what} is far larger than {max_pixels / 1e6:.1f} MP") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{what}: not a readable image ({err.__class__.__name__})") from None


def check_photo(payload: Any, what: str, max_pixels: int) -> tuple[int, int]:
    """Check an upload from its header only (cheap, right after upload): -> (height, width).

    Catches files that are no image and images over the pixel cap; a file whose data is
    corrupt past its header is caught when it is read.
    """
    path = payload_path(payload)
    if path is None:
        raise InputError(f"no {what}")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise InputError(f"{what} is far larger than {max_pixels / 1e6:.1f} MP") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{what}: not a readable image ({err.__class__.__name__})") from None
    if width * height > max_pixels:
        raise InputError(
            f"{what} is {width}x{height} ({width * height / 1e6:.1f} MP); this server "
            f"accepts images up to {max_pixels / 1e6:.1f} MP"
        )
    return height, width


def read_photo(payload: Any, what: str, max_pixels: int) -> np.ndarray:
    """An uploaded photo as float32 ``(H,W,3)`` in [0,1], RGB, at most ``max_pixels``."""
    path = payload_path(payload)
    if path is None:
        raise InputError(f"no {what}: upload one or pick an example")
    return pil_to_rgb_array(_open_capped(path, what, max_pixels))


def read_mask_upload(
    payload: Any, what: str, size: tuple[int, int], max_pixels: int
) -> tuple[np.ndarray, list[str]]:
    """A mask file (colour mask or label map) as int64 labels of ``size``, and notes.

    Read by :func:`dpst.labels.mask_files.read_mask`; its warnings (resized,
    unknown colours) become notes for the page.
    """
    path = payload_path(payload)
    if path is None:
        raise InputError(f"no {what}: upload one for each photo, or choose another mask mode")
    check_photo(path, what, max_pixels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = read_mask(path, size)
        except InputError as err:
            raise InputError(str(err).replace(path, what)) from None
    notes = [str(w.message).replace(path, what) for w in caught]
    return labels, notes


def layer_labels(rgba: np.ndarray) -> np.ndarray:
    """One editor layer ``(H,W,4)`` uint8 -> labels: colour index where painted, else UNPAINTED.

    Painted pixels of no palette colour (where two colours blend) are ``-1`` (unlabelled).
    """
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] != 4 or arr.dtype != np.uint8:
        raise InputError(f"a painted layer must be an RGBA image, got {arr.shape} {arr.dtype}")
    painted = arr[..., 3] >= PAINT_ALPHA
    labels = np.full(arr.shape[:2], UNPAINTED, dtype=np.int64)
    if painted.any():
        labels[painted] = decode_colour_mask(arr[..., :3])[painted]
    return labels


def painted_labels(layers: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray | None:
    """Editor layers (bottom first) -> labels of ``size``; None when nothing is painted.

    Later layers cover earlier ones where they are painted. Layers of another size than the
    photo are resized with nearest neighbour (labels are never interpolated).
    """
    result: np.ndarray | None = None
    for layer in layers:
        labels = layer_labels(layer)
        if labels.shape != tuple(size):
            labels = resize_labels(labels, size)
        painted = labels != UNPAINTED
        if not painted.any():
            continue
        result = labels if result is None else np.where(painted, labels, result)
    return result


def read_editor_layers(payload: Any, what: str, max_pixels: int) -> list[np.ndarray]:
    """The RGBA layers of an ImageEditor payload (``{"layers": [file, ...], ...}``)."""
    if payload is None:
        return []
    if not isinstance(payload, Mapping):
        raise InputError(f"{what}: unexpected editor value of type {type(payload).__name__}")
    layers = []
    for item in payload.get("layers") or []:
        path = payload_path(item)
        if path is None:
            continue
        img = _open_capped(path, what, max_pixels)
        layers.append(np.asarray(img.convert("RGBA"), dtype=np.uint8))
    return layers


def describe_labels(content: np.ndarray, style: np.ndarray, colours: bool = True) -> str:
    """The regions of each photo in words: "content blue, unpainted; style blue, green".

    ``colours`` False names labels by number (label maps, whose values are not colours).
    """
    from dpst.labels.palette import MASK_PALETTE

    def name(label: int) -> str:
        if label == UNPAINTED:
            return "unpainted"
        if colours and 0 <= label < len(MASK_PALETTE):
            return MASK_PALETTE[label][0]
        return f"label {label}"

    def names(labels: np.ndarray) -> list[str]:
        return [name(int(v)) for v in np.unique(labels) if v != UNLABELLED]

    c, s = names(content), names(style)
    return f"content {', '.join(c) or 'nothing'}; style {', '.join(s) or 'nothing'}"
