"""3D LUT files, torch-free: ``.cube`` (Resolve/Adobe) and Hald CLUT images.

LUTs are float ``(S, S, S, 3)`` indexed ``[b, g, r]`` (:mod:`dpst.serve.runtime.lut_fit`), so their
C-order rows are the files' order (red fastest). Written files:

- ``.cube``: ``TITLE``, ``LUT_3D_SIZE S``, ``DOMAIN_MIN 0 0 0``, ``DOMAIN_MAX 1 1 1``, then
  ``S^3`` lines of three values with 6 decimals (what Resolve, Premiere, ffmpeg's ``lut3d``,
  Pillow and OCIO read);
- Hald CLUT: a PNG of side ``level^3`` pixels whose raster order is the lattice of
  ``level^2`` nodes per axis, 8-bit (level 8: 512 px, 64 nodes, what darktable, RawTherapee,
  G'MIC and ImageMagick's ``-hald-clut`` read). The LUT is resampled trilinearly to that
  lattice, so applying the Hald CLUT is applying the LUT.

Writes are atomic (never a partial file under the final name). Reading (:func:`read_cube`)
refuses anything malformed in one line naming the file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dpst.errors import InputError
from dpst.imageio import atomic_write

# The reader is shared with training (dpst.lut_io); offered here beside the writers.
from dpst.lut_io import CUBE_SUFFIX, MAX_CUBE_SIZE, read_cube  # noqa: F401
from dpst.serve.runtime.lut_fit import apply_lut, identity_lut

DEFAULT_HALD_LEVEL = 8


def check_lut(lut: np.ndarray) -> np.ndarray:
    """``lut`` as float64 ``(S, S, S, 3)``, finite; else InputError."""
    lut = np.asarray(lut, dtype=np.float64)
    if lut.ndim != 4 or lut.shape[3] != 3 or len(set(lut.shape[:3])) != 1 or lut.shape[0] < 2:
        raise InputError(f"a LUT is an (S, S, S, 3) array with S >= 2, got {lut.shape}")
    if not np.isfinite(lut).all():
        raise InputError("a LUT must hold finite values")
    return lut


def cube_text(lut: np.ndarray, title: str = "dpst look") -> str:
    """The ``.cube`` file for ``lut``: header, then one node per line, red fastest."""
    lut = check_lut(lut)
    title = " ".join(title.replace('"', "'").split())  # one line, no stray quote
    header = [
        f'TITLE "{title}"',
        f"LUT_3D_SIZE {lut.shape[0]}",
        "DOMAIN_MIN 0.0 0.0 0.0",
        "DOMAIN_MAX 1.0 1.0 1.0",
    ]
    buffer = io.StringIO()
    np.savetxt(buffer, lut.reshape(-1, 3), fmt="%.6f")
    return "\n".join(header) + "\n" + buffer.getvalue()


def cube_data(lut: np.ndarray, title: str = "dpst look") -> bytes:
    """The ``.cube`` file's bytes (ASCII, as the format's readers expect)."""
    return cube_text(lut, title).encode("ascii", errors="replace")


def write_cube(path: str | os.PathLike, lut: np.ndarray, title: str = "dpst look") -> Path:
    """Write ``lut`` as a ``.cube`` file, atomically; returns the path."""
    data = cube_data(lut, title)
    atomic_write(path, lambda fh: fh.write(data))
    return Path(path)


def hald_image(lut: np.ndarray, level: int = DEFAULT_HALD_LEVEL) -> np.ndarray:
    """The Hald CLUT of ``lut``: uint8 ``(level^3, level^3, 3)``."""
    if not 2 <= level <= 16:
        raise InputError(f"the Hald level must be in 2..16, got {level}")
    nodes = identity_lut(level**2)
    values = np.clip(apply_lut(nodes, check_lut(lut)), 0.0, 1.0)
    side = level**3
    return (values.reshape(side, side, 3) * 255.0 + 0.5).astype(np.uint8)


def write_hald(path: str | os.PathLike, lut: np.ndarray, level: int = DEFAULT_HALD_LEVEL) -> Path:
    """Write the Hald CLUT of ``lut`` as a PNG, atomically; returns the path."""
    data = hald_png(path, lut, level)
    atomic_write(path, lambda fh: fh.write(data))
    return Path(path)


def hald_png(path: str | os.PathLike, lut: np.ndarray, level: int = DEFAULT_HALD_LEVEL) -> bytes:
    """The PNG file's bytes of the Hald CLUT of ``lut`` to be written at ``path``."""
    if Path(path).suffix.lower() != ".png":
        raise InputError(f"{path}: a Hald CLUT is written as .png")
    buffer = io.BytesIO()
    Image.fromarray(hald_image(lut, level)).save(buffer, format="PNG")
    return buffer.getvalue()
