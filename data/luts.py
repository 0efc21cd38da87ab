"""3D colour look-up tables (photographic looks): reading, applying, generating, blending.

A LUT is a float32 tensor ``(S, S, S, 3)`` indexed ``lut[b, g, r]`` (the output colour at the
node with blue index b, green g, red r; node i stands for input i / (S - 1)), a batch is
``(B, S, S, S, 3)``: the layout of the ``.cube`` reader (:mod:`dpst.lut_io`), the LUT fit and
the LUT files of the runtime, one layout everywhere. Applying one is one ``F.grid_sample``
call on the channel-first view ``(N, 3, D, H, W)``, D, H, W = blue, green, red, with
``align_corners=True``. Colours: RGB in [0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dpst.constants import LUMA_REC709
from dpst.data.photo_pool import stable_share
from dpst.errors import InputError
from dpst.image_checks import check_image_batch
from dpst.imageio import pil_to_rgb_array
from dpst.lut_io import lut_error, read_cube

LATTICE_SIZE = 17  # the shared looks' .cube size; 17^3 nodes keep a library of 269 at 16 MB
CUBE_SUFFIXES = (".cube",)
HALD_SUFFIXES = (".png", ".tif", ".tiff")
LUT_SUFFIXES = CUBE_SUFFIXES + HALD_SUFFIXES


def _fail(path: Path, problem: object) -> InputError:
    return lut_error(path, problem)


def _to_lut(values: np.ndarray) -> torch.Tensor:
    # Both formats list nodes red fastest, then green, then blue: values is (b, g, r, c).
    return torch.from_numpy(np.ascontiguousarray(values, np.float32))


def _read_cube(path: Path) -> torch.Tensor:
    return _to_lut(read_cube(path).astype(np.float32))


def _read_hald(path: Path) -> torch.Tensor:
    # Not pillow-lut's load_hald_image: it stops at level 8 (Color3DLUT's 65-node cap), and
    # level-12 Hald files are common. tests/test_luts.py checks both read the same table.
    try:
        with Image.open(path) as img:
            img.load()
            rgb = pil_to_rgb_array(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise _fail(path, f"not a readable Hald CLUT image ({type(err).__name__}: {err})") from None
    height, width = rgb.shape[:2]
    level = round(width ** (1 / 3))
    if width != height or level < 2 or level**3 != width:
        raise _fail(path, f"{width}x{height} px is no Hald CLUT (a square of side level^3)")
    return _to_lut(rgb.reshape(level**2, level**2, level**2, 3))  # raster order = node order


def read_lut(path: str | os.PathLike) -> torch.Tensor:
    """Read a ``.cube`` file (any LUT_3D_SIZE; domain must be 0..1) or a Hald CLUT image
    (``.png``/``.tif``, any level L: side L^3 px, lattice L^2) as float32 ``(S, S, S, 3)``.

    Values are returned as stored (a ``.cube`` may hold values slightly outside [0, 1]).
    Raises InputError (one line naming the file) for a missing, unreadable or malformed file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LUT_SUFFIXES:
        raise _fail(path, f"unknown LUT format {path.suffix!r} (use .cube, .png or .tif)")
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a file")
    try:
        return _read_cube(path) if suffix in CUBE_SUFFIXES else _read_hald(path)
    except OSError as err:
        raise _fail(path, f"cannot read ({type(err).__name__}: {err.strerror or err})") from None


def identity_lut(size: int = LATTICE_SIZE) -> torch.Tensor:
    """The LUT that maps every colour to itself: float32 ``(S, S, S, 3)``, values in [0, 1]."""
    ramp = torch.linspace(0.0, 1.0, size)
    blue, green, red = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
    return torch.stack([red, green, blue], dim=-1)


def _sample(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of ``image`` (B,3,H,W) in ``lut`` (S,S,S,3) or (B,S,S,S,3), unclamped."""
    check_image_batch(image)
    if lut.ndim == 4:
        lut = lut.unsqueeze(0).expand(image.shape[0], -1, -1, -1, -1)
    if lut.ndim != 5 or lut.shape[0] != image.shape[0] or lut.shape[4] != 3:
        raise ValueError(f"lut must be (S,S,S,3) or (B,S,S,S,3), got {tuple(lut.shape)}")
    if len(set(lut.shape[1:4])) != 1:
        raise ValueError(f"lut must be (S,S,S,3) or (B,S,S,S,3), got {tuple(lut.shape)}")
    # grid's last axis is (x, y, z) = (W, H, D) = (red, green, blue): the image's own order.
    grid = (image.permute(0, 2, 3, 1) * 2.0 - 1.0).unsqueeze(1)
    channels_first = lut.to(image.dtype).permute(0, 4, 1, 2, 3)
    out = F.grid_sample(
        channels_first, grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.squeeze(2)


def apply_lut(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Apply a LUT to ``image`` (B,3,H,W) in [0, 1] by trilinear interpolation.

    ``lut`` is ``(S,S,S,3)`` (one for all) or ``(B,S,S,S,3)`` (one per image). Inputs outside
    [0, 1] take the border nodes. The result, (B,3,H,W) in the image's dtype, is clamped to
    [0, 1] (a ``.cube`` may overshoot slightly). Differentiable in image and lut.
    """
    return _sample(image, lut).clamp(0.0, 1.0)


def resample_lut(lut: torch.Tensor, size: int) -> torch.Tensor:
    """The LUT ``(S,S,S,3)`` or ``(B,S,S,S,3)`` re-sampled trilinearly on a ``size`` lattice;
    values are not clamped. Returned unchanged when already of that size."""
    if lut.shape[-2] == size:
        return lut
    batch = lut.shape[0] if lut.ndim == 5 else 1
    nodes = identity_lut(size).to(lut).permute(3, 0, 1, 2).reshape(1, 3, size * size, size)
    out = _sample(nodes.expand(batch, -1, -1, -1), lut)  # (batch, 3, S*S, S)
    out = out.reshape(batch, 3, size, size, size).permute(0, 2, 3, 4, 1)
    return out if lut.ndim == 5 else out[0]


def lut_from_function(
    fn: Callable[[torch.Tensor], torch.Tensor], size: int = LATTICE_SIZE
) -> torch.Tensor:
    """Tabulate a colour function ``fn(rgb (N,3) in [0,1]) -> (N,3)`` as a ``(S,S,S,3)`` LUT
    (dtype and values as ``fn`` returns them)."""
    nodes = identity_lut(size).reshape(-1, 3)
    out = fn(nodes)
    if out.shape != nodes.shape:
        raise ValueError(f"fn must map (N, 3) to (N, 3), got {tuple(out.shape)}")
    return out.reshape(size, size, size, 3)


def _hue_direction(hue: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    # A fully saturated hue minus its own luma: tinting along it leaves brightness alone.
    h6 = 6 * hue
    rgb = torch.stack([(h6 - 3).abs() - 1, 2 - (h6 - 2).abs(), 2 - (h6 - 4).abs()]).clamp(0, 1)
    chroma = rgb - (rgb * luma).sum()
    return chroma / chroma.abs().max()


def random_look(generator: torch.Generator, size: int = LATTICE_SIZE) -> torch.Tensor:
    """A random but plausible photographic look, float32 ``(S, S, S, 3)`` in [0, 1].

    Composed in this order, each part switched on by chance with a random strength: white
    balance (per-channel gains at constant luma), per-channel tone curves (gamma and a
    monotone sine series), an S-curve (or flattening) contrast, saturation (sometimes full
    desaturation through a random B&W channel mix), split toning (two hues weighted by
    shadows / highlights), fade (lifted blacks, lowered whites). The same generator state
    gives the same look; the generator's device is the LUT's device.
    """
    like = {"dtype": torch.float64, "device": generator.device}
    opts = like | {"generator": generator}
    luma = torch.tensor(LUMA_REC709, **like)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, **opts)

    def chance(p: float) -> bool:
        return bool(torch.rand((), **opts) < p)

    gains = torch.ones(3, **like)
    if chance(0.7):  # temperature (red against blue) and tint (green)
        temperature, tint = uniform(-0.25, 0.25), uniform(-0.08, 0.08)
        gains = torch.exp(torch.stack([temperature, tint, -temperature]))
        gains = gains / (gains * luma).sum()
    gamma, series = torch.ones(3, 1, **like), torch.zeros(3, 3, **like)
    if chance(0.6):
        gamma = torch.exp(uniform(-0.3, 0.3) + uniform(-0.08, 0.08, 3, 1))
        # f(x) = x + sum_k a_k sin(k pi x) / (k pi): f(0)=0, f(1)=1, f' >= 1 - sum|a_k| > 0.
        series = (
            uniform(-1, 1, 1, 3) * uniform(0, 0.45) + uniform(-1, 1, 3, 3) * uniform(0, 0.15)
        ) / 3
    contrast = uniform(-0.5, 0.7) if chance(0.6) else torch.zeros((), **like)
    mono = chance(0.12)
    saturation = (uniform(0.4, 1.6) if chance(0.7) else torch.ones((), **like)) * (not mono)
    mix = luma * torch.exp(uniform(-0.7, 0.7, 3)) if mono else luma  # B&W film filters
    mix = mix / mix.sum()
    tones = uniform(0, 0.15, 2) if chance(0.5) else torch.zeros(2, **like)
    tints = [_hue_direction(hue, luma) for hue in uniform(0, 1, 2)]
    fade = uniform(0, 0.12, 2) if chance(0.4) else torch.zeros(2, **like)
    k = torch.arange(1, 4, **like) * math.pi

    def look(rgb: torch.Tensor) -> torch.Tensor:
        x = (rgb.to(gains) * gains).clamp(0.0, 1.0) ** gamma.T
        x = x + (series.T.unsqueeze(0) * torch.sin(x.unsqueeze(1) * k[:, None]) / k[:, None]).sum(1)
        x = x - contrast * torch.sin(2 * math.pi * x) / (2 * math.pi)
        y = (x * mix).sum(-1, keepdim=True)
        x = y + saturation * (x - y)
        y = (x * luma).sum(-1, keepdim=True).clamp(0.0, 1.0)
        x = x + tones[0] * (1 - y) ** 2 * tints[0] + tones[1] * y**2 * tints[1]
        x = fade[0] + (1 - fade[0] - fade[1]) * x
        return x.clamp(0.0, 1.0)

    return lut_from_function(look, size).float()


def blend_luts(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """``(1 - t) a + t b`` of two LUTs ``(S,S,S,3)``; the smaller lattice is first resampled
    to the larger one's size. ``t`` is a float or a tensor broadcastable to the LUTs."""
    size = max(a.shape[-2], b.shape[-2])
    return (1 - t) * resample_lut(a, size) + t * resample_lut(b, size)


@dataclass(frozen=True)
class LookLibrary:
    """The LUTs of one folder, all on one lattice: ``luts`` (N,S,S,S,3) float32, ``names``
    (file names, sorted), ``problems`` (one line per unreadable file, naming it)."""

    names: list[str]
    luts: torch.Tensor
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, size: int = LATTICE_SIZE) -> LookLibrary:
        """Read every ``.cube`` and Hald ``.png``/``.tif`` in ``folder`` (not recursive),
        resampled to a ``size`` lattice. Unreadable files are skipped and listed in
        ``problems``; InputError when the folder is missing or has no readable LUT."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder of LUTs")
        names, luts, problems = [], [], []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in LUT_SUFFIXES:
                continue
            try:
                luts.append(resample_lut(read_lut(path), size))
            except InputError as err:
                problems.append(str(err))
                continue
            names.append(path.name)
        if not luts:
            detail = f"; {len(problems)} unreadable, first: {problems[0]}" if problems else ""
            raise InputError(f"{folder}: no readable LUT (.cube, Hald .png/.tif){detail}")
        return cls(names, torch.stack(luts), problems)

    def split(self, validation_fraction: float, seed: int = 0) -> tuple[LookLibrary, LookLibrary]:
        """(train, validation) by a hash of each file name and ``seed``: deterministic, and a
        file keeps its side when others are added. Either side may be empty for tiny
        libraries; both keep ``problems``."""
        if not 0.0 <= validation_fraction <= 1.0:
            raise InputError(f"validation_fraction must be in [0, 1], got {validation_fraction}")
        is_val = [stable_share(f"{seed}\0{name}") < validation_fraction for name in self.names]
        train, val = ([i for i, v in enumerate(is_val) if v == want] for want in (False, True))
        return self._subset(train), self._subset(val)

    def _subset(self, index: list[int]) -> LookLibrary:
        rows = torch.tensor(index, dtype=torch.long)
        return LookLibrary([self.names[i] for i in index], self.luts[rows], list(self.problems))
