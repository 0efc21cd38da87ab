"""The one-pass model's full-resolution work in bounded memory, torch-free (NumPy, SciPy).

The generator's grid depends on the content only through the content resized to the working
size (antialiased bilinear, as ``torch.nn.functional.interpolate(..., antialias=True)``), and
its full-resolution pass is pointwise given the grid and each pixel's grid coordinates. So the
runtime (:mod:`dpst.serve.runtime.stylizer`):

1. resizes the content to the working size here, band by band from uint8 or float, with the
   same weights PyTorch uses (:func:`resize_matrix`);
2. runs the stylizer graph on that small image to get the grid;
3. runs the renderer graph on bands of rows (:func:`row_bands`), each told where its rows and
   columns sit in the grid (:func:`cell_positions`), and writes each band into the output.

Peak memory is then the input, the output (uint8 when asked) and one band's twelve
coefficients per pixel, whatever the image size; whole-image rendering needed about 3 GB at
4K and passed 9 GB at 52 megapixels.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import scipy.sparse

# Pixels per band of rows. Measured at 1080p on 2 threads (bench.onnx): bands of 2^14 to
# 2^16 pixels keep a band's coefficients in cache and are faster than the whole image at
# once; smaller bands pay ONNX Runtime's per-call cost.
BAND_PIXELS = 1 << 15
# Rows of the input converted to float at a time while resizing.
RESIZE_BAND_ROWS = 256


def cell_positions(start: int, stop: int, size: int, cells: int) -> np.ndarray:
    """Grid coordinates of pixels ``start..stop-1`` of an axis of ``size`` pixels, float32.

    The NumPy twin of :func:`dpst.models.bilateral_grid.cell_positions` (same float32
    operations, so the same values): pixel centre i maps to ``(i + 0.5) * cells / size -
    0.5``, clamped to ``[0, cells - 1]``.
    """
    index = np.arange(start, stop, dtype=np.float32)
    return np.clip((index + np.float32(0.5)) * np.float32(cells / size) - np.float32(0.5),
                   0, cells - 1).astype(np.float32)  # fmt: skip


@functools.lru_cache(maxsize=16)
def resize_matrix(size: int, out_size: int) -> scipy.sparse.csr_matrix:
    """``(out_size, size)`` weights of an antialiased bilinear resize along one axis.

    PyTorch's ``interpolate(mode="bilinear", antialias=True, align_corners=False)`` (itself
    Pillow's algorithm): a triangle filter widened by the scale when shrinking, each output
    pixel's taps normalised to sum to 1. Float64. Cached: a folder or a clip resizes frames of
    one size again and again (building the weights took a few milliseconds a frame); callers
    must not modify the matrix.
    """
    scale = size / out_size
    support = scale if scale >= 1.0 else 1.0
    inv_scale = 1.0 / scale if scale >= 1.0 else 1.0
    rows, cols, values = [], [], []
    for i in range(out_size):
        centre = scale * (i + 0.5)
        low = max(int(centre - support + 0.5), 0)
        high = min(int(centre + support + 0.5), size)
        taps = np.arange(low, high)
        weights = np.clip(1.0 - np.abs((taps - centre + 0.5) * inv_scale), 0.0, None)
        total = weights.sum()
        if total > 0:
            weights = weights / total
        rows += [i] * len(taps)
        cols += taps.tolist()
        values += weights.tolist()
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(out_size, size))


def as_float(band: np.ndarray) -> np.ndarray:
    """Rows of an image (uint8, or float in [0, 1]) as float32 in [0, 1].

    Divided, not multiplied by 1/255: the very values :func:`dpst.imageio.read_image` gives,
    so an 8-bit photo stylised as read (``dpst fast``) or as float (a notebook, the
    optimiser's inputs) gives the same pixels."""
    if band.dtype == np.uint8:
        return band.astype(np.float32) / np.float32(255)
    return band.astype(np.float32, copy=False)


def working_image(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` ``(H, W, 3)`` (uint8 or float) resized to ``(1, 3, size, size)`` float32 as
    the generator resizes it (:func:`resized`)."""
    return resized(image, size, size)


def resized(
    image: np.ndarray, out_height: int, out_width: int, mix: np.ndarray | None = None
) -> np.ndarray:
    """``image`` ``(H, W, 3)`` (uint8 or float) resized to ``(1, 3, h, w)`` float32 with
    PyTorch's antialiased bilinear weights, converting ``RESIZE_BAND_ROWS`` rows to float at a
    time. ``mix`` ``(3,)``: one channel, the colours' weighted sum (e.g. luma), taken band by
    band before the resize (``(1, 1, h, w)``; a third of the work)."""
    height, width = image.shape[:2]
    mix = None if mix is None else np.asarray(mix, np.float32).reshape(3, 1)
    channels = 3 if mix is None else 1

    def floats(band: np.ndarray) -> np.ndarray:
        band = as_float(band)
        return band if mix is None else band @ mix

    if (height, width) == (out_height, out_width):  # the identity (video passes these)
        return np.ascontiguousarray(floats(image).transpose(2, 0, 1)[None], dtype=np.float32)
    along_x = resize_matrix(width, out_width)
    along_y = resize_matrix(height, out_height)
    narrow = np.empty((height, out_width * channels), dtype=np.float64)
    for start in range(0, height, RESIZE_BAND_ROWS):
        band = floats(image[start : start + RESIZE_BAND_ROWS])  # (h, W, C)
        rows = band.shape[0]
        # (W, h*C) -> (w, h*C): every row of the band at once, one sparse product.
        columns = band.transpose(1, 0, 2).reshape(width, rows * channels)
        narrow[start : start + rows] = (
            (along_x @ columns)
            .reshape(out_width, rows, channels)
            .transpose(1, 0, 2)
            .reshape(rows, -1)
        )
    small = (along_y @ narrow).reshape(out_height, out_width, channels)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32)


def row_bands(height: int, width: int, band_pixels: int | None = None) -> Iterator[slice]:
    """Consecutive bands of rows covering ``height``, each about ``band_pixels`` pixels."""
    rows = max(1, (band_pixels or BAND_PIXELS) // max(1, width))
    for start in range(0, height, rows):
        yield slice(start, min(height, start + rows))


def store(out: np.ndarray, rows: slice, planar: np.ndarray) -> None:
    """A rendered band ``(1, 3, h, W)`` in [0, 1] written into ``out[rows]`` ``(H, W, 3)``,
    rounded to the nearest level when ``out`` is uint8."""
    band = planar[0].transpose(1, 2, 0)
    if out.dtype == np.uint8:
        out[rows] = np.rint(band * np.float32(255)).astype(np.uint8)
    else:
        out[rows] = band
