"""A global 3D LUT fitted to a colour mapping seen on one photo: content colours -> output colours.

Torch-free (NumPy, SciPy). A LUT here is float ``(S, S, S, 3)`` indexed ``lut[b, g, r]``
(node i stands for input i / (S - 1)), so its C-order rows are the ``.cube`` and Hald order
(red fastest). Applying one is trilinear interpolation, as Pillow's ``Color3DLUT``, ffmpeg's
``lut3d`` (``interp=trilinear``) and :func:`dpst.data.luts.apply_lut` do.

The fit is regularised least squares on the lattice values ``x`` (one column per channel)::

    minimise  1/N sum_i |A_i x - y_i|^2 + smoothness * (S - 1) * |H x|^2 + anchor * |x - prior|^2

- ``A``: trilinear splatting of each content pixel into the 8 nodes around its colour, so
  ``A_i x`` is the LUT applied to pixel i and ``y_i`` its output colour;
- ``H``: the lattice's second differences (the Hessian: three pure, three mixed terms counted
  twice, as in its Frobenius norm). Affine maps cost nothing, so where the photo has no
  colours the LUT continues the neighbouring mapping linearly instead of flattening to a
  constant (a first-difference Laplacian would), and an affine look, the identity included,
  is reproduced exactly. ``(S - 1)`` makes ``smoothness`` mean the same for every lattice
  size (it approximates the integral of the squared Hessian);
- ``anchor``: a tiny pull to ``prior``, the best affine colour map of the photo (least
  squares, itself pulled slightly to the identity), which fixes what the photo leaves open
  (a photo of greys says nothing about how red moves) without bending an affine look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from dpst.errors import InputError


@dataclass(frozen=True)
class LutFitConfig:
    """How a LUT is fitted.

    Attributes:
        size: nodes per axis (``LUT_3D_SIZE``); 33 is the common grading size.
        smoothness: weight of the curvature term against the mean squared colour error;
            larger is smoother and fits local colour quirks less.
        anchor: weight of the pull to the photo's affine colour map (only decides what the
            photo leaves open).
        max_pixels: pixels used at most; a larger photo is sampled on a regular stride
            (pairs of colours must stay exact, so no averaging).
    """

    size: int = 33
    smoothness: float = 1e-4
    anchor: float = 1e-7
    max_pixels: int = 1 << 20

    def validate(self) -> None:
        if not 2 <= self.size <= 65:  # Pillow's Color3DLUT reads up to 65
            raise InputError(f"the LUT size must be in 2..65, got {self.size}")
        if self.smoothness < 0 or self.anchor <= 0 or self.max_pixels < 1:
            raise InputError(
                f"need smoothness >= 0, anchor > 0, max_pixels >= 1; got {self.smoothness}, "
                f"{self.anchor}, {self.max_pixels}"
            )


def identity_lut(size: int) -> np.ndarray:
    """The LUT mapping every colour to itself, float64 ``(S, S, S, 3)`` ``[b, g, r]``."""
    ramp = np.linspace(0.0, 1.0, size)
    blue, green, red = np.meshgrid(ramp, ramp, ramp, indexing="ij")
    return np.stack([red, green, blue], axis=-1)


def _corners(colours: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The 8 lattice nodes around each colour ``(N, 3)`` rgb and their trilinear weights:
    ``(N, 8)`` flat node indices (``(b * S + g) * S + r``) and ``(N, 8)`` weights."""
    t = np.clip(colours, 0.0, 1.0) * (size - 1)
    low = np.clip(np.floor(t), 0, size - 2).astype(np.int64)
    frac = t - low
    index, weight = [], []
    for db in (0, 1):
        for dg in (0, 1):
            for dr in (0, 1):
                r, g, b = low[:, 0] + dr, low[:, 1] + dg, low[:, 2] + db
                index.append((b * size + g) * size + r)
                w = np.where(dr, frac[:, 0], 1 - frac[:, 0])
                w = w * np.where(dg, frac[:, 1], 1 - frac[:, 1])
                weight.append(w * np.where(db, frac[:, 2], 1 - frac[:, 2]))
    return np.stack(index, axis=1), np.stack(weight, axis=1)


def splat_matrix(colours: np.ndarray, size: int) -> sp.csr_matrix:
    """``A`` ``(N, S^3)``: row i holds the trilinear weights of colour i on the lattice."""
    index, weight = _corners(np.asarray(colours, dtype=np.float64), size)
    rows = np.repeat(np.arange(len(index)), 8)
    shape = (len(index), size**3)
    return sp.csr_matrix((weight.ravel(), (rows, index.ravel())), shape=shape)


def apply_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``image`` (..., 3) in [0, 1] through ``lut`` (S, S, S, 3) by trilinear interpolation
    (inputs outside [0, 1] take the border); float64, not clamped."""
    size = lut.shape[0]
    colours = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    index, weight = _corners(colours, size)
    flat = np.asarray(lut, dtype=np.float64).reshape(-1, 3)
    out = np.einsum("nk,nkc->nc", weight, flat[index])
    return out.reshape(np.shape(image))


def curvature_operators(size: int) -> list[tuple[float, sp.csr_matrix]]:
    """``(weight, D)`` pairs whose ``sum weight * |D x|^2`` is the lattice's squared Hessian:
    second differences along r, g, b (weight 1) and mixed ones (weight 2)."""
    eye = sp.identity(size, format="csr")
    first = sp.diags([-1.0, 1.0], [0, 1], shape=(size - 1, size), format="csr")
    second = sp.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(max(size - 2, 0), size), format="csr")

    def on_axes(b, g, r) -> sp.csr_matrix:  # node order: b slowest, r fastest
        return sp.kron(b, sp.kron(g, r), format="csr")

    return [
        (1.0, on_axes(eye, eye, second)),
        (1.0, on_axes(eye, second, eye)),
        (1.0, on_axes(second, eye, eye)),
        (2.0, on_axes(eye, first, first)),
        (2.0, on_axes(first, eye, first)),
        (2.0, on_axes(first, first, eye)),
    ]


def curvature_matrix(size: int) -> sp.csc_matrix:
    """``H^T H`` ``(S^3, S^3)`` of :func:`curvature_operators`, scaled by ``S - 1``."""
    total = sp.csr_matrix((size**3, size**3))
    for weight, op in curvature_operators(size):
        total = total + weight * (op.T @ op)
    return ((size - 1) * total).tocsc()


def sample_pixels(content: np.ndarray, output: np.ndarray, max_pixels: int):
    """Matching ``(N, 3)`` float64 colours of both images, at most ``max_pixels`` of them on
    a regular stride (deterministic)."""
    if content.shape != output.shape or content.ndim != 3 or content.shape[2] != 3:
        raise InputError(
            f"content and output must be (H, W, 3) of one size, got {content.shape} and "
            f"{output.shape}"
        )
    x = np.asarray(content, dtype=np.float64).reshape(-1, 3)
    y = np.asarray(output, dtype=np.float64).reshape(-1, 3)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("content and output must be finite")
    stride = -(-len(x) // max_pixels)
    return x[::stride], y[::stride]


def fit_lut(
    content: np.ndarray, output: np.ndarray, config: LutFitConfig | None = None
) -> np.ndarray:
    """The LUT ``(S, S, S, 3)`` float64 that best maps ``content``'s colours to ``output``'s
    (both ``(H, W, 3)`` in [0, 1], pixel for pixel), clipped to [0, 1].

    Solves the normal equations of the objective in the module docstring (see
    :func:`solve_normal_equations`).
    """
    config = config or LutFitConfig()
    config.validate()
    x, y = sample_pixels(content, output, config.max_pixels)
    system, rhs = normal_equations(x, y, config)
    solution = solve_normal_equations(system, rhs, config.size)
    return np.clip(solution, 0.0, 1.0).reshape((config.size,) * 3 + (3,))


def normal_equations(x: np.ndarray, y: np.ndarray, config: LutFitConfig):
    """``(M, b)`` of the objective for colour pairs ``x -> y`` ``(N, 3)``: the minimiser
    solves ``M v = b`` (``M`` sparse SPD ``(S^3, S^3)``, ``b`` ``(S^3, 3)``)."""
    size = config.size
    splat = splat_matrix(x, size)
    count = max(len(x), 1)
    system = (splat.T @ splat) / count + config.anchor * sp.identity(size**3, format="csr")
    if config.smoothness > 0:
        system = system + config.smoothness * curvature_matrix(size)
    rhs = (splat.T @ np.asarray(y, dtype=np.float64)) / count
    prior = affine_prior(x, y, identity_lut(size).reshape(-1, 3))
    return sp.csr_matrix(system), rhs + config.anchor * prior


# The affine fit's pull to the identity, against mean squared colour errors: only felt when
# the photo's colours span less than three dimensions.
AFFINE_RIDGE = 1e-6


def affine_prior(x: np.ndarray, y: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """``nodes`` ``(M, 3)`` through the affine map ``[x, 1] W`` closest to ``x -> y`` (mean
    squared error plus ``AFFINE_RIDGE |W - identity|^2``)."""
    x = np.asarray(x, dtype=np.float64)
    design = np.hstack([x, np.ones((len(x), 1))])
    count = max(len(x), 1)
    eye = np.vstack([np.eye(3), np.zeros((1, 3))])
    gram = design.T @ design / count + AFFINE_RIDGE * np.eye(4)
    weights = np.linalg.solve(
        gram, design.T @ np.asarray(y, np.float64) / count + AFFINE_RIDGE * eye
    )
    return np.hstack([nodes, np.ones((len(nodes), 1))]) @ weights


# A sparse LU of the whole lattice costs 30 s at 33 nodes (SuperLU's fill-in in 3-D); up to
# this size it is instant, above it the lattice is solved iteratively around a coarse one.
DIRECT_MAX_SIZE = 9
RTOL = 1e-8
MAX_ITERATIONS = 5000


def solve_normal_equations(system: sp.csr_matrix, rhs: np.ndarray, size: int) -> np.ndarray:
    """``M^-1 b`` for the three channels at once.

    Small lattices: sparse LU. Larger: conjugate gradients preconditioned by Jacobi plus an
    exact solve on a 9-node lattice (prolonged trilinearly), which carries the smooth,
    slowly converging part of the curvature term: 33 nodes converge in a few hundred
    iterations where Jacobi alone takes thousands.
    """
    if size <= DIRECT_MAX_SIZE:
        return splu(system.tocsc()).solve(np.ascontiguousarray(rhs))
    prolong = splat_matrix(identity_lut(size).reshape(-1, 3), DIRECT_MAX_SIZE)
    coarse = splu(sp.csc_matrix(prolong.T @ system @ prolong))
    inverse_diagonal = 1.0 / system.diagonal()[:, None]

    restrict = prolong.T.tocsr()

    def precondition(residual: np.ndarray) -> np.ndarray:
        correction = _columns(prolong, coarse.solve(_columns(restrict, residual)))
        return inverse_diagonal * residual + correction

    start = _columns(prolong, coarse.solve(_columns(restrict, rhs)))
    return block_cg(system, rhs, start, precondition)


def _columns(matrix: sp.csr_matrix, dense: np.ndarray) -> np.ndarray:
    # SciPy's sparse-times-(n, 3) is several times slower than three sparse-times-vector.
    return np.stack([matrix @ dense[:, k] for k in range(dense.shape[1])], axis=1)


def block_cg(system, rhs: np.ndarray, start: np.ndarray, precondition) -> np.ndarray:
    """Preconditioned conjugate gradients on each column of ``rhs`` together (one sparse
    product per step for the three channels), to ``RTOL`` of each column's norm."""
    solution = start.copy()
    residual = rhs - _columns(system, solution)
    target = RTOL * np.linalg.norm(rhs, axis=0)
    z = precondition(residual)
    direction = z.copy()
    rz = np.sum(residual * z, axis=0)
    for _ in range(MAX_ITERATIONS):
        if np.all(np.linalg.norm(residual, axis=0) <= target):
            break
        product = _columns(system, direction)
        curvature = np.sum(direction * product, axis=0)
        step = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
        solution += step * direction
        residual -= step * product
        z = precondition(residual)
        rz_next = np.sum(residual * z, axis=0)
        ratio = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
        direction = z + ratio * direction
        rz = rz_next
    return solution
