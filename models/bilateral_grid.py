"""Bilateral grids of 3x4 affine colour transforms: slicing and applying (Gharbi et al. 2017).

A grid has shape ``(B, 12, D, Gh, Gw)``: 12 coefficients (a 3x4 matrix, row-major: output
channel c is ``A[c,0]*r + A[c,1]*g + A[c,2]*b + A[c,3]``) on D luminance bins and a Gh x Gw
spatial lattice. Slicing reads it trilinearly at each full-resolution pixel: spatially at the
pixel's position, in luminance at the value of a guide image. Cell centres follow
``align_corners=False`` and coordinates are clamped to the outermost cells, so the result is
exactly what ``F.grid_sample`` on the 5-D grid computes with ``padding_mode="border"``; the
tests use that call as the oracle.

Two implementations of the same maths, both exact:

- ``"grid_sample"``: interpolate the grid along y once per image row (tiny), then one 4-D
  bilinear ``grid_sample`` in (x, luminance) with the rows as the batch. It reads 4 corners per
  pixel instead of 8 and uses PyTorch's vectorised kernel: about 5x faster than the 5-D call on
  CPU. It exports at opset 16+, but ONNX Runtime's GridSample kernel is slow.
- ``"gather"``: the same row table, then four ``Gather``s of 12 coefficients per pixel and
  planar arithmetic. Slower in PyTorch eager, faster in ONNX Runtime (where GridSample runs
  at a fraction of PyTorch's speed); use it for export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The maps' layout and their application are the post-filter's too: one definition.
from dpst.optim_reference.affine import AFFINE_COLS, AFFINE_ROWS, NUM_COEFFS, apply_affine

SLICE_METHODS = ("grid_sample", "gather")


def identity_grid(
    luma_bins: int, grid_h: int, grid_w: int, *, dtype=None, device=None
) -> torch.Tensor:
    """A grid whose every cell holds the identity transform: ``(1, 12, D, Gh, Gw)``."""
    eye = torch.eye(AFFINE_ROWS, AFFINE_COLS, dtype=dtype, device=device).reshape(NUM_COEFFS)
    return eye.view(1, NUM_COEFFS, 1, 1, 1).expand(1, NUM_COEFFS, luma_bins, grid_h, grid_w)


def cell_positions(start: int, stop: int, size: int, cells: int, like: torch.Tensor):
    """Grid coordinates of pixels ``start..stop-1`` of an axis of ``size`` pixels: ``(n,)``.

    Pixel centre i maps to ``(i + 0.5) * cells / size - 0.5`` (cell centres at integers),
    clamped to ``[0, cells - 1]``. A band of rows or columns addresses the grid exactly as
    the whole image does, which is what lets the full-resolution pass run in tiles
    (:func:`dpst.serve.runtime.tiled_render.cell_positions` is the NumPy twin).
    """
    index = torch.arange(start, stop, dtype=like.dtype, device=like.device)
    return ((index + 0.5) * (cells / size) - 0.5).clamp(0, cells - 1)


def _split_positions(pos: torch.Tensor, cells: int) -> tuple:
    """Lower cell index and weight of the upper cell. The lower index is capped at
    ``cells - 2`` so that the upper neighbour always exists; at the last cell the upper
    weight is then 1. Positions outside ``[0, cells - 1]`` are clamped first."""
    pos = pos.clamp(0, cells - 1)
    low = pos.floor().clamp(max=cells - 2)
    return low.long(), pos - low


def _cell_coordinates(size: int, cells: int, like: torch.Tensor) -> tuple:
    """Lower cell index and upper weight for each of ``size`` pixels along an axis."""
    return _split_positions(cell_positions(0, size, size, cells, like), cells)


def _luma_coordinates(guide: torch.Tensor, bins: int) -> tuple:
    """Lower luminance bin and upper weight for a guide ``(B, H, W)``, clamped to the edges."""
    pos = (guide * bins - 0.5).clamp(0, bins - 1)
    low = pos.floor().clamp(max=bins - 2)
    return low.long(), pos - low


def _rows(grid: torch.Tensor, height: int, y_pos: torch.Tensor | None = None) -> torch.Tensor:
    """The grid interpolated along y at every image row: ``(B, 12, D, H, Gw)``; at the
    rows' grid coordinates ``y_pos`` ``(H,)`` when given (a band of a taller image)."""
    if y_pos is None:
        y0, wy = _cell_coordinates(height, grid.shape[3], grid)
    else:
        y0, wy = _split_positions(y_pos, grid.shape[3])
    wy = wy.view(1, 1, 1, -1, 1)
    return grid.index_select(3, y0) * (1 - wy) + grid.index_select(3, y0 + 1) * wy


def _check_grid(grid: torch.Tensor, guide: torch.Tensor) -> None:
    if grid.dim() != 5 or grid.shape[1] != NUM_COEFFS or min(grid.shape[2:]) < 2:
        raise ValueError(f"grid must be (B, 12, D>=2, Gh>=2, Gw>=2), got {tuple(grid.shape)}")
    if guide.dim() != 4 or guide.shape[1] != 1 or guide.shape[0] != grid.shape[0]:
        raise ValueError(
            f"guide must be (B, 1, H, W) with B={grid.shape[0]}, got {tuple(guide.shape)}"
        )


def _slice_rows_grid_sample(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Coefficients in row-major layout ``(B, H, 12, W)`` via one 4-D bilinear grid_sample."""
    batch, coeffs, bins, _, grid_w = grid.shape
    height, width = guide.shape[-2:]
    rows = _rows(grid, height).permute(0, 3, 1, 2, 4).reshape(batch * height, coeffs, bins, grid_w)
    # Normalised coordinates with align_corners=False: pixel centres in x, the guide in
    # luminance. padding_mode="border" clamps exactly as _cell_coordinates does.
    x_norm = (torch.arange(width, dtype=guide.dtype, device=guide.device) + 0.5) * (2 / width) - 1
    x_norm = x_norm.view(1, 1, width).expand(batch * height, 1, width)
    z_norm = (guide * 2 - 1).reshape(batch * height, 1, width)
    points = torch.stack([x_norm, z_norm], dim=-1)
    out = F.grid_sample(rows, points, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(batch, height, coeffs, width)


def _slice_planar_gather(
    grid: torch.Tensor,
    guide: torch.Tensor,
    y_pos: torch.Tensor | None = None,
    x_pos: torch.Tensor | None = None,
) -> torch.Tensor:
    """Coefficients in planar layout ``(B, 12, H*W)`` via four row gathers per pixel; at the
    pixels' grid coordinates ``y_pos`` ``(H,)`` and ``x_pos`` ``(W,)`` when given (a tile).

    Each gather copies whole 12-coefficient rows (fast), and each corner is transposed to
    planar before it is weighted: ONNX Runtime broadcasts a per-pixel weight over 12
    contiguous values one pixel at a time, but over a plane of H*W values at full speed.
    """
    batch, coeffs, bins, _, grid_w = grid.shape
    height, width = guide.shape[-2:]
    table = _rows(grid, height, y_pos).permute(0, 3, 2, 4, 1).reshape(-1, coeffs)
    if x_pos is None:
        x0, wx = _cell_coordinates(width, grid_w, guide)
    else:
        x0, wx = _split_positions(x_pos, grid_w)
    z0, wz = _luma_coordinates(guide[:, 0], bins)
    row = torch.arange(batch, device=grid.device).view(batch, 1, 1) * height
    row = row + torch.arange(height, device=grid.device).view(1, height, 1)
    base = (((row * bins) + z0) * grid_w + x0.view(1, 1, width)).reshape(-1)
    wx = wx.view(1, 1, width)
    out = None
    for dz, weight_z in ((0, 1 - wz), (1, wz)):
        for dx, weight_x in ((0, 1 - wx), (1, wx)):
            weight = (weight_z * weight_x).reshape(batch, 1, height * width)
            corner = table.index_select(0, base + (dz * grid_w + dx))
            term = corner.view(batch, height * width, coeffs).transpose(1, 2) * weight
            out = term if out is None else out + term
    return out


def slice_grid(grid: torch.Tensor, guide: torch.Tensor, method: str = "grid_sample"):
    """Per-pixel affine coefficients read from the grid at each pixel's position and guide value.

    Args:
        grid: ``(B, 12, D, Gh, Gw)`` float, D, Gh, Gw >= 2.
        guide: ``(B, 1, H, W)``, same dtype; values in [0, 1] address the luminance bins
            (values outside use the first or last bin).
        method: ``"grid_sample"`` or ``"gather"`` (same result up to rounding).

    Returns:
        ``(B, 12, H, W)`` coefficients (a strided view, not necessarily contiguous).
    """
    _check_grid(grid, guide)
    if method == "grid_sample":
        return _slice_rows_grid_sample(grid, guide).permute(0, 2, 1, 3)
    if method == "gather":
        return _slice_planar_gather(grid, guide).view(guide.shape[0], NUM_COEFFS, *guide.shape[2:])
    raise ValueError(f"slice method must be one of {SLICE_METHODS}, got {method!r}")


def slice_and_apply(
    grid: torch.Tensor, guide: torch.Tensor, image: torch.Tensor, method: str = "grid_sample"
) -> torch.Tensor:
    """Slice the grid with the guide and apply the transforms to ``image`` ``(B, 3, H, W)``.

    Equal to ``apply_affine(slice_grid(grid, guide, method), image)``; works in the layout
    each method produces, so that only the 3-channel image and output are transposed, never
    the 12 coefficients (the memory traffic at 4K is what costs).

    Returns:
        ``(B, 3, H, W)``, not clamped.
    """
    _check_grid(grid, guide)
    if image.shape[0] != guide.shape[0] or image.shape[2:] != guide.shape[2:]:
        raise ValueError(f"image {tuple(image.shape)} does not match guide {tuple(guide.shape)}")
    if method == "grid_sample":
        coeffs = _slice_rows_grid_sample(grid, guide)
        out = apply_affine(coeffs, image.permute(0, 2, 1, 3), channel_dim=2)
        return out.permute(0, 2, 1, 3).contiguous()
    if method == "gather":
        return _apply_planar(_slice_planar_gather(grid, guide), image)
    raise ValueError(f"slice method must be one of {SLICE_METHODS}, got {method!r}")


def slice_and_apply_at(
    grid: torch.Tensor,
    guide: torch.Tensor,
    image: torch.Tensor,
    y_pos: torch.Tensor,
    x_pos: torch.Tensor,
) -> torch.Tensor:
    """:func:`slice_and_apply` (``"gather"``) on a tile: ``image`` and ``guide`` ``(B, C, h, w)``
    are a window of a larger image whose rows and columns sit at grid coordinates ``y_pos``
    ``(h,)`` and ``x_pos`` ``(w,)`` (:func:`cell_positions`). Tiles rendered this way and put
    together equal the whole image rendered at once; the full-resolution pass then needs
    memory for one tile, not for twelve coefficients of every pixel.

    Returns:
        ``(B, 3, h, w)``, not clamped.
    """
    _check_grid(grid, guide)
    height, width = image.shape[2:]
    if guide.shape[2:] != image.shape[2:] or y_pos.shape != (height,) or x_pos.shape != (width,):
        raise ValueError(
            f"image {tuple(image.shape)}, guide {tuple(guide.shape)}, y_pos "
            f"{tuple(y_pos.shape)} and x_pos {tuple(x_pos.shape)} do not match"
        )
    return _apply_planar(_slice_planar_gather(grid, guide, y_pos, x_pos), image)


def _apply_planar(coeffs: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Planar coefficients ``(B, 12, H*W)`` applied to ``image`` ``(B, 3, H, W)``."""
    batch, _, height, width = image.shape
    coeffs = coeffs.view(batch, AFFINE_ROWS, AFFINE_COLS, -1)
    # Whole planes times whole planes, no strided slices: the fast shapes in ONNX Runtime.
    colour = image.reshape(batch, 1, AFFINE_ROWS, height * width)
    out = (coeffs[:, :, :AFFINE_ROWS] * colour).sum(dim=2) + coeffs[:, :, AFFINE_ROWS]
    return out.view(batch, AFFINE_ROWS, height, width)


def grid_roughness(grid: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean squared difference between neighbouring cells of a grid ``(B, 12, D, Gh, Gw)``.

    The sum over the luminance, vertical and horizontal axes of the mean squared forward
    difference of the coefficients. A constant grid (one affine map everywhere) scores 0;
    penalising it during training keeps neighbouring transforms alike, which is what keeps
    the sliced output locally affine in the content (Xia et al., ECCV 2020, regularise their
    grid the same way).
    """
    if grid.dim() != 5 or grid.shape[1] != NUM_COEFFS:
        raise ValueError(f"grid must be (B, {NUM_COEFFS}, D, Gh, Gw), got {tuple(grid.shape)}")
    return sum(grid.diff(dim=axis).square().flatten(1).mean(1) for axis in (2, 3, 4))
