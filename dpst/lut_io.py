"""Reading 3D LUT files, torch-free: what :mod:`dpst.serve.runtime.lut_files` (export, video) and
:mod:`dpst.data.luts` (training looks) share.

LUTs are float ``(S, S, S, 3)`` indexed ``[b, g, r]``: the files list nodes red fastest, so
their rows are C order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dpst.errors import InputError

CUBE_SUFFIX = ".cube"
# Pillow's Color3DLUT (and so pillow-lut) stops at 65 nodes, the largest common size.
MAX_CUBE_SIZE = 65
# Beyond this a file cannot be a .cube of at most MAX_CUBE_SIZE nodes (a row is three numbers;
# 64 bytes is four times what writers put there): refused before it is read.
MAX_CUBE_ROW_BYTES = 64
MAX_CUBE_HEADER_LINES = 1000


def _check_declared_size(path: Path) -> None:
    """Refuse a ``.cube`` whose header or file size says more than MAX_CUBE_SIZE nodes, from
    its first lines: a 256-node file took 24 s and 3.5 GB to parse before its size was
    refused."""
    if path.stat().st_size > MAX_CUBE_ROW_BYTES * MAX_CUBE_SIZE**3:
        raise lut_error(path, f"too large for a .cube of at most {MAX_CUBE_SIZE} nodes")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh):
            key, *values = line.split() or [""]
            if key == "LUT_3D_SIZE" and values and values[0].isdigit():
                if int(values[0]) > MAX_CUBE_SIZE:
                    raise lut_error(
                        path, f"LUT_3D_SIZE {values[0]}: at most {MAX_CUBE_SIZE} nodes are read"
                    )
                return
            if key[:1].isdigit() or key[:1] in "-." or number > MAX_CUBE_HEADER_LINES:
                return  # the data: pillow-lut says what is missing


def lut_error(path: os.PathLike | str, problem: object) -> InputError:
    """The one-line error for a LUT file: its path, then the problem."""
    return InputError(f"{path}: {' '.join(str(problem).split())}")


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
                raise lut_error(path, f"{line.strip()!r}: only the input domain 0..1 is supported")


def read_cube(path: str | os.PathLike) -> np.ndarray:
    """A ``.cube`` 3D LUT (domain 0..1) as float64 ``(S, S, S, 3)`` ``[b, g, r]``.

    Parsed by pillow-lut; a missing, unreadable or malformed file (no size, a bad number, too
    few rows, non-finite values, 1D LUT, another domain) is an InputError naming it.
    """
    from pillow_lut import load_cube_file

    path = Path(path)
    if not path.is_file():
        raise lut_error(path, "no such file" if not path.exists() else "not a file")
    try:
        _check_declared_size(path)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise lut_error(path, f"cannot read ({err.strerror or err})") from None
    _check_domain(path, lines)
    try:
        table = load_cube_file(lines)
    except (ValueError, IndexError) as err:
        raise lut_error(path, f"not a valid .cube file: {err}") from None
    size = table.size
    if table.channels != 3 or len(set(size)) != 1 or not 2 <= size[0] <= MAX_CUBE_SIZE:
        raise lut_error(path, f"unsupported .cube: {table.channels} channels, size {size}")
    values = np.asarray(table.table, dtype=np.float64)
    if values.size != size[0] ** 3 * 3 or not np.isfinite(values).all():
        raise lut_error(path, "not a valid .cube file: wrong row count or non-finite values")
    return values.reshape(size[0], size[0], size[0], 3)
