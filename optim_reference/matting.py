"""The matting Laplacian ``M_I`` of a content image and the photorealism loss built on it.

Levin, Lischinski, Weiss 2008 ("A closed-form solution to natural image matting"), with the
border convention of their code and of pymatting's ``cf_laplacian``: only windows lying
fully inside the image contribute. The paper's loss is ``sum_c V_c^T M_I V_c`` (docs/METHOD.md
section 2.5, 3x3 windows, eps 1e-7); its gradient is ``2 M_I V``.

Two ways to apply ``M_I``, behind one operator built once per content image:

- ``"sparse"``: the explicit matrix (SciPy CSR, float64, any input dtype). On this CPU
  SciPy's product was the fastest we measured (``python -m bench.matting``), it computes
  in float64, and the matrix is what the tests compare against pymatting.
- ``"matrix_free"``: window by window, as He, Sun, Tang 2010 do with box filters, but on
  whitened, centred window colours computed once in float64 (see ``matting_windows``), so
  that float32 keeps float32 accuracy where "mean of products minus product of means"
  cancels catastrophically; memory stays linear and modest at 4K, and it runs on a GPU.

``"auto"`` picks the matrix-free path on GPUs and whenever the explicit matrix would exceed
a memory budget, and the sparse path otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import scipy.sparse
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from dpst.errors import InputError
from dpst.optim_reference.boxfilter import window_size
from dpst.optim_reference.matting_sparse import csr_from_image, stencil_span
from dpst.optim_reference.matting_windows import (
    matrix_free_product,
    whitened_window_colours,
)

# The paper's photorealism term: 3x3 windows, eps 1e-7 (docs/METHOD.md 2.5).
DEFAULT_RADIUS = 1
DEFAULT_EPS = 1e-7
# "auto" builds the explicit matrix (and about as much at the peak of building it) only
# while it stays under this: up to ~7 megapixels at radius 1, so 4K goes matrix-free.
SPARSE_MEMORY_BUDGET_BYTES = 2 * 1024**3

Method = Literal["auto", "sparse", "matrix_free"]
METHODS = ("auto", "sparse", "matrix_free")


def _check_parameters(radius: int, eps: float) -> None:
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer) or radius < 1:
        raise InputError(f"radius must be an integer >= 1; got {radius!r}")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps):
        raise InputError(f"eps must be a finite number > 0; got {eps!r}")
    if eps <= 0:
        raise InputError(f"eps must be a finite number > 0; got {eps!r}")


def as_image_batch(image: torch.Tensor | np.ndarray, radius: int = DEFAULT_RADIUS) -> torch.Tensor:
    """Validate a content image and return it as a float ``(B, 3, H, W)`` tensor.

    Accepts a tensor ``(3, H, W)`` or ``(B, 3, H, W)``, or a NumPy ``(H, W, 3)`` array, RGB
    in [0, 1], at least ``2r+1`` pixels on each side. Raises a one-line ``InputError`` (a
    ``ValueError``) naming the requirement and the value received.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise InputError(f"image array must be RGB (H, W, 3); got shape {image.shape}")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise InputError(f"image must be a torch tensor or NumPy array; got {type(image)}")
    image = image.detach()  # M_I depends on the content only, never differentiated
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[1] != 3:
        raise InputError(f"image must be RGB (B, 3, H, W) or (3, H, W); got {tuple(image.shape)}")
    if not image.is_floating_point():
        image = image.to(torch.float32)
    if not bool(torch.isfinite(image).all()):
        raise InputError("image values must be finite and in [0, 1]; got NaN or infinity")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise InputError(f"image values must be in [0, 1]; got min {low:g}, max {high:g}")
    k = window_size(radius)
    if image.shape[-2] < k or image.shape[-1] < k:
        raise InputError(
            f"image must be at least {k}x{k} pixels (the window of radius {radius}); "
            f"got {image.shape[-1]}x{image.shape[-2]} (width x height, as everywhere)"
        )
    return image


def matting_laplacian_sparse(
    image: torch.Tensor | np.ndarray, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS
) -> scipy.sparse.csr_matrix:
    """The matting Laplacian of ONE image as a float64 CSR matrix, ``(H*W, H*W)``.

    Pixels are numbered in row-major order; equal to ``pymatting.cf_laplacian(image_hwc,
    eps, radius)``. ``image``: tensor ``(3, H, W)`` / ``(1, 3, H, W)`` or array ``(H, W, 3)``.
    """
    _check_parameters(radius, eps)
    batch = as_image_batch(image, radius)
    if batch.shape[0] != 1:
        raise InputError(f"expected one image; got a batch of {batch.shape[0]}")
    return csr_from_image(batch, radius, eps)


def sparse_matrix_bytes(batch: int, height: int, width: int, radius: int) -> int:
    """Memory of the explicit matrices (float64 values and int32 columns, ``(4r+1)^2`` per
    row), which is also about the peak of building them; used by ``method="auto"``."""
    return batch * height * width * (8 + 4) * stencil_span(radius) ** 2


@dataclass(frozen=True, eq=False)
class MattingLaplacian:
    """``M_I`` for a batch of content images, built once; ``op(v)`` is ``M_I v``.

    Build with :meth:`build`. ``op(v)`` and ``op.energy(v)`` are differentiable in ``v``;
    the product is linear and ``M_I`` is symmetric, so its backward is another product.
    """

    method: Literal["sparse", "matrix_free"]
    radius: int
    eps: float
    shape: tuple[int, int, int]  # (B, H, W)
    device: torch.device
    dtype: torch.dtype
    matrices: tuple[scipy.sparse.csr_matrix, ...] = ()
    windows: torch.Tensor | None = None  # (B, n, 3, H-2r, W-2r), matrix-free only

    @classmethod
    def build(
        cls,
        image: torch.Tensor | np.ndarray,
        radius: int = DEFAULT_RADIUS,
        eps: float = DEFAULT_EPS,
        method: Method = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        memory_budget_bytes: int = SPARSE_MEMORY_BUDGET_BYTES,
    ) -> MattingLaplacian:
        """Precompute everything that depends only on the image.

        Args:
            image: ``(B, 3, H, W)`` (or see :func:`as_image_batch`), RGB in [0, 1].
            radius, eps: window radius and regulariser (the paper: 1 and 1e-7).
            method: ``"auto"``, ``"sparse"`` or ``"matrix_free"``.
            device: where products happen and results live (default: the image's). The
                sparse path keeps SciPy matrices on the CPU whatever the device.
            dtype: dtype of ``v`` (default: the image's float dtype). The matrix-free
                path stores its window data in it; the sparse path always keeps float64.
            memory_budget_bytes: ``"auto"`` uses the sparse path on CPU only below this.
        """
        _check_parameters(radius, eps)
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}; got {method!r}")
        image = as_image_batch(image, radius)
        device = torch.device(device) if device is not None else image.device
        dtype = dtype or image.dtype
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        b, _, h, w = image.shape
        if method == "auto":
            fits = sparse_matrix_bytes(b, h, w, radius) <= memory_budget_bytes
            method = "sparse" if device.type == "cpu" and fits else "matrix_free"
        common = dict(radius=radius, eps=eps, shape=(b, h, w), device=device, dtype=dtype)
        if method == "sparse":
            matrices = tuple(csr_from_image(image[i : i + 1], radius, eps) for i in range(b))
            return cls(method="sparse", matrices=matrices, **common)
        z = whitened_window_colours(image.to(device), radius, eps, dtype)
        return cls(method="matrix_free", windows=z, **common)

    def to(self, device: torch.device | str) -> MattingLaplacian:
        """The same operator with products and results on ``device``."""
        device = torch.device(device)
        if self.method == "sparse":
            return replace(self, device=device)
        return replace(self, device=device, windows=self.windows.to(device))

    def _check_vector(self, v: torch.Tensor) -> None:
        b, h, w = self.shape
        if (
            not isinstance(v, torch.Tensor)
            or v.ndim != 4
            or v.shape[0] != b
            or v.shape[2:] != (h, w)
        ):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v)
            raise InputError(f"v must have shape (B, C, H, W) = ({b}, C, {h}, {w}); got {got}")
        if v.dtype not in (torch.float32, torch.float64):
            raise InputError(f"v must be float32 or float64; got {v.dtype}")
        if self.method == "sparse":
            return  # computed on the CPU in float64 whatever v's device and dtype
        if v.dtype != self.dtype:
            raise InputError(f"v must be {self.dtype} like the operator; got {v.dtype}")
        if v.device != self.windows.device:
            raise InputError(f"v must be on {self.windows.device}; got {v.device}")

    def apply_no_grad(self, v: torch.Tensor) -> torch.Tensor:
        """``M v`` without autograd (the kernel both autograd Functions call)."""
        if self.method == "matrix_free":
            return matrix_free_product(self.windows, v.detach(), self.radius)
        c = v.shape[1]
        x = v.detach().to("cpu", torch.float64).reshape(v.shape[0], c, -1).numpy()
        # One matvec per channel: faster here than SciPy's multi-vector product.
        y = np.stack(
            [np.stack([m @ xc for xc in xb]) for m, xb in zip(self.matrices, x, strict=True)]
        )
        return torch.from_numpy(y).reshape(v.shape).to(v.device, v.dtype)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """``M v`` for ``v`` ``(B, C, H, W)``: one ``M`` per batch element, every channel."""
        self._check_vector(v)
        return _Product.apply(v, self)

    def energy(self, v: torch.Tensor) -> torch.Tensor:
        """``(B,)``: ``sum_c v_c^T M v_c``; its gradient ``2 M v`` reuses the forward product."""
        self._check_vector(v)
        return _Energy.apply(v, self)


class _Product(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: torch.Tensor, op: MattingLaplacian) -> torch.Tensor:
        ctx.op = op
        return op.apply_no_grad(v)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        # M is symmetric: the adjoint of v -> M v is itself (and stays differentiable).
        return _Product.apply(grad, ctx.op), None


class _Energy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: torch.Tensor, op: MattingLaplacian) -> torch.Tensor:
        mv = op.apply_no_grad(v)
        ctx.save_for_backward(mv)
        return (v * mv).flatten(1).sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mv,) = ctx.saved_tensors
        return 2.0 * grad.view(-1, 1, 1, 1) * mv, None


def matting_laplacian_matvec(
    image: torch.Tensor, v: torch.Tensor, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """``M_I v`` matrix-free, in ``v``'s dtype and on its device; differentiable in ``v``.

    Args:
        image: ``(B, 3, H, W)`` in [0, 1].
        v: ``(B, C, H, W)``, float32 or float64.

    Builds the operator each call; for repeated products build a :class:`MattingLaplacian`.
    """
    op = MattingLaplacian.build(
        image, radius, eps, method="matrix_free", device=v.device, dtype=v.dtype
    )
    return op(v)


def photorealism_loss(
    op_or_image: MattingLaplacian | torch.Tensor,
    v: torch.Tensor,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """``(B,)``: ``sum_c V_c^T M_I V_c`` for ``v`` ``(B, C, H, W)`` (channels in [0, 1]).

    Pass a prebuilt :class:`MattingLaplacian` inside an optimisation loop; an image builds
    one (``method="auto"``, ``radius`` and ``eps`` used only then). Gradient: ``2 M_I V``.
    """
    op = op_or_image
    if not isinstance(op, MattingLaplacian):
        op = MattingLaplacian.build(op, radius, eps, device=v.device, dtype=v.dtype)
    return op.energy(v)


class PhotorealismLoss(nn.Module):
    """Thin module over :func:`photorealism_loss` for one batch of content images."""

    def __init__(
        self,
        content: torch.Tensor,
        radius: int = DEFAULT_RADIUS,
        eps: float = DEFAULT_EPS,
        method: Method = "auto",
    ) -> None:
        super().__init__()
        self.op = MattingLaplacian.build(content, radius, eps, method=method)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if v.device != self.op.device:
            self.op = self.op.to(v.device)
        return photorealism_loss(self.op, v)
