"""A one-pass result as a global 3D LUT file: fit, write, and say how faithful it is.

Torch-free (NumPy, SciPy, scikit-image, Pillow). ``dpst look export`` and the demo call
:func:`export_lut` with the content photo and the model's output for it; the fit is
:func:`dpst.serve.runtime.lut_fit.fit_lut`, the files :mod:`dpst.serve.runtime.lut_files`.

A LUT maps colours, the same everywhere in the picture, so it carries a *global* look
exactly and approximates a result whose colours depend on where they are (per-region looks
from masks, the model's local adjustments); the reported error, the mean CIEDE2000 between
the output and the LUT applied to the content, says how close it came.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpst.imageio import atomic_write_files
from dpst.serve.runtime.lut_files import DEFAULT_HALD_LEVEL, cube_data, hald_png
from dpst.serve.runtime.lut_fit import LutFitConfig, apply_lut, fit_lut

# Colour differences are measured on at most this many pixels (a regular stride): CIEDE2000
# of a 24 Mpx photo costs seconds and the mean does not move.
METRIC_PIXELS = 1 << 20


@dataclass(frozen=True)
class LutExport:
    """What :func:`export_lut` wrote and how well the LUT reproduces the output.

    ``mean_de2000``: mean CIEDE2000 between the output and the LUT (as written, 6 decimals)
    applied to the content; ``p95_de2000`` its 95th percentile.
    """

    lut: np.ndarray
    cube: Path | None
    hald: Path | None
    mean_de2000: float
    p95_de2000: float

    def summary(self) -> dict:
        return {
            "cube": str(self.cube) if self.cube else None,
            "hald": str(self.hald) if self.hald else None,
            "lut_size": int(self.lut.shape[0]),
            "mean_de2000": round(self.mean_de2000, 3),
            "p95_de2000": round(self.p95_de2000, 3),
        }


def ciede2000(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 between two sRGB images ``(H, W, 3)`` in [0, 1] (skimage, D65)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0)
    b = np.clip(np.asarray(b, dtype=np.float64), 0.0, 1.0)
    return deltaE_ciede2000(rgb2lab(a), rgb2lab(b))


def _sampled(image: np.ndarray) -> np.ndarray:
    flat = np.asarray(image).reshape(-1, 1, 3)
    return flat[:: -(-len(flat) // METRIC_PIXELS)]


def export_lut(
    content: np.ndarray,
    output: np.ndarray,
    cube_path: str | os.PathLike | None,
    config: LutFitConfig | None = None,
    hald_path: str | os.PathLike | None = None,
    hald_level: int = DEFAULT_HALD_LEVEL,
    title: str = "dpst look",
) -> LutExport:
    """Fit the LUT that takes ``content`` to ``output`` (``(H, W, 3)`` in [0, 1], one size),
    write it as ``.cube`` (and as a Hald CLUT PNG when ``hald_path`` is given; either may be
    None to skip), and measure it. The files are written as one (atomically, both or
    neither)."""
    config = config or LutFitConfig()
    lut = fit_lut(content, output, config)
    lut = np.round(lut, 6)  # what the .cube holds, so the error is the file's
    files = []
    if cube_path is not None:
        files.append((cube_path, cube_data(lut, title)))
    if hald_path is not None:
        files.append((hald_path, hald_png(hald_path, lut, hald_level)))
    atomic_write_files(files)
    cube = Path(cube_path) if cube_path is not None else None
    hald = Path(hald_path) if hald_path is not None else None
    source = _sampled(content)
    difference = ciede2000(_sampled(output), apply_lut(source, lut))
    return LutExport(
        lut, cube, hald, float(difference.mean()), float(np.percentile(difference, 95))
    )
