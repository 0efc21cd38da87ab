"""3D LUT files, torch-free: ``.cube`` (Resolve/Adobe) and Hald CLUT images.

LUTs are float ``(S, S, S, 3)`` indexed ``[b, g, r]`` (:mod:`dpst.serve.lut_fit`), so their
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
from dpst.serve.lut_fit import apply_lut, identity_lut

CUBE_SUFFIX = ".cube"
DEFAULT_HALD_LEVEL = 8
# Pillow's Color3DLUT (and so pillow-lut) stops at 65 nodes, the largest common size.
MAX_CUBE_SIZE = 65


def _fail(path: os.PathLike | str, problem: object) -> InputError:
    return InputError(f"{path}: {' '.join(str(problem).split())}")  # always one line


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


def write_cube(path: str | os.PathLike, lut: np.ndarray, title: str = "dpst look") -> Path:
    """Write ``lut`` as a ``.cube`` file, atomically; returns the path."""
    data = cube_text(lut, title).encode("ascii", errors="replace")
    atomic_write(path, lambda fh: fh.write(data))
    return Path(path)


def _check_domain(path: Path, lines: list[str]) -> None:
    # pillow-lut skips DOMAIN_* silently; a LUT for another input range (log footage) would
    # be applied to the wrong colours.
    expected = {"DOMAIN_MIN": [0.0] * 3, "DOMAIN_MAX": [1.0] * 3, "LUT_3D_INPUT_RANGE": [0, 1]}
    for line in lines:
        key, *values = line.split() or [""]
        if key in expected:
            try:
                numbers = [float(v) for v in values]
            except ValueError:
                numbers = None
            if numbers != expected[key]:
                raise _fail(path, f"{line.strip()!r}: only the input domain 0..1 is supported")


def read_cube(path: str | os.PathLike) -> np.ndarray:
    """A ``.cube`` 3D LUT (domain 0..1) as float64 ``(S, S, S, 3)`` ``[b, g, r]``.

    Parsed by pillow-lut; a missing, unreadable or malformed file (no size, a bad number, too
    few rows, non-finite values, 1D LUT, another domain) is an InputError naming it.
    """
    from pillow_lut import load_cube_file

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a file")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise _fail(path, f"cannot read ({err.strerror or err})") from None
    _check_domain(path, lines)
    try:
        table = load_cube_file(lines)
    except (ValueError, IndexError) as err:
        raise _fail(path, f"not a valid .cube file: {err}") from None
    size = table.size
    if table.channels != 3 or len(set(size)) != 1 or not 2 <= size[0] <= MAX_CUBE_SIZE:
        raise _fail(path, f"unsupported .cube: {table.channels} channels, size {size}")
    values = np.asarray(table.table, dtype=np.float64)
    if values.size != size[0] ** 3 * 3 or not np.isfinite(values).all():
        raise _fail(path, "not a valid .cube file: wrong row count or non-finite values")
    return values.reshape(size[0], size[0], size[0], 3)


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
    if Path(path).suffix.lower() != ".png":
        raise InputError(f"{path}: a Hald CLUT is written as .png")
    buffer = io.BytesIO()
    Image.fromarray(hald_image(lut, level)).save(buffer, format="PNG")
    data = buffer.getvalue()
    atomic_write(path, lambda fh: fh.write(data))
    return Path(path)
