"""The matting Laplacian against pymatting's cf_laplacian and a direct dense oracle, in float64.

Oracle calls: ``pymatting.cf_laplacian(image_hwc_float64, epsilon, radius)``; the dense
oracle below follows Levin et al.'s formula window by window with ``np.linalg.inv``.
"""

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import norm as sparse_norm

from dpst.optim_reference.matting import (
    MattingLaplacian,
    PhotorealismLoss,
    matting_laplacian_matvec,
    matting_laplacian_sparse,
    photorealism_loss,
)
from tests.conftest import sample_photo

pymatting = pytest.importorskip("pymatting")

METHODS = ("sparse", "matrix_free")
# Relative error of float64 results against the float64 oracles (the bound).
FLOAT64_RTOL = 1e-8
# Relative error of float32 products against the float64 oracle (the target).
FLOAT32_RTOL = 1e-6


def dense_laplacian(image: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Levin et al.'s Laplacian, one fully-inside window at a time (independent of the code)."""
    h, w, _ = image.shape
    k = 2 * radius + 1
    n = k * k
    lap = np.zeros((h * w, h * w))
    for y in range(h - k + 1):
        for x in range(w - k + 1):
            idx = np.array([(y + dy) * w + x + dx for dy in range(k) for dx in range(k)])
            colours = image[y : y + k, x : x + k].reshape(n, 3)
            centred = colours - colours.mean(0)
            inv = np.linalg.inv(centred.T @ centred / n + eps / n * np.eye(3))
            block = np.eye(n) - (1.0 + centred @ inv @ centred.T) / n
            lap[np.ix_(idx, idx)] += block
    return lap


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3))


def to_batch(image_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image_hwc).permute(2, 0, 1)[None].contiguous()


def apply_dense(matrix, v: torch.Tensor) -> torch.Tensor:
    """``matrix @ v_c`` for every channel of one image ``v`` ``(1, C, H, W)``."""
    flat = v[0].double().reshape(v.shape[1], -1).numpy()
    out = np.stack([matrix @ channel for channel in flat])
    return torch.from_numpy(out).reshape(v.shape).double()


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    return float((result.double() - reference).norm() / reference.norm())


# Odd and even sizes, down to the smallest legal ones for each radius.
SIZES_BY_RADIUS = {
    1: [(3, 3), (3, 7), (7, 3), (4, 6), (6, 9), (10, 8)],
    2: [(5, 5), (5, 8), (6, 9), (10, 8)],
}


@pytest.mark.parametrize("eps", [1e-7, 1e-5, 1e-3])
@pytest.mark.parametrize(
    ("size", "radius"), [(size, r) for r, sizes in SIZES_BY_RADIUS.items() for size in sizes]
)
def test_both_paths_match_pymatting(size, radius, eps):
    h, w = size
    image = random_image(h, w, seed=h * 31 + w)
    reference = pymatting.cf_laplacian(image, eps, radius)
    ours = matting_laplacian_sparse(image, radius, eps)
    assert sparse_norm(ours - reference) <= FLOAT64_RTOL * sparse_norm(reference)
    v = torch.randn(1, 2, h, w, dtype=torch.float64)
    expected = apply_dense(reference, v)
    for method in METHODS:
        op = MattingLaplacian.build(to_batch(image), radius, eps, method=method)
        assert op.method == method
        assert relative_error(op(v), expected) <= FLOAT64_RTOL
    assert relative_error(matting_laplacian_matvec(to_batch(image), v, radius, eps), expected) <= (
        FLOAT64_RTOL
    )


@pytest.mark.parametrize(("size", "radius"), [((5, 6), 1), ((6, 7), 2), ((3, 3), 1)])
def test_sparse_matches_dense_oracle(size, radius):
    image = random_image(*size, seed=3)
    dense = dense_laplacian(image, radius, 1e-5)
    ours = matting_laplacian_sparse(image, radius, 1e-5).toarray()
    assert np.linalg.norm(ours - dense) <= FLOAT64_RTOL * np.linalg.norm(dense)


def test_real_photo_flat_windows_match_pymatting():
    # A real photo has near-flat windows, where A_k is ill-conditioned at eps 1e-7.
    image = sample_photo("chelsea", 40).astype(np.float64)
    reference = pymatting.cf_laplacian(image, 1e-7, 1)
    v = torch.rand(1, 3, *image.shape[:2], dtype=torch.float64)
    expected = apply_dense(reference, v)
    for method in METHODS:
        op = MattingLaplacian.build(to_batch(image), method=method)
        assert relative_error(op(v), expected) <= FLOAT64_RTOL


@pytest.mark.parametrize("radius", [1, 2])
def test_row_bands_give_the_same_result(monkeypatch, radius):
    # Real sizes are processed in bands of window rows; force one-row and two-row bands,
    # and the huge-page buffers that only large images get.
    from dpst.optim_reference import matting_sparse, matting_windows

    monkeypatch.setattr(matting_windows, "_HUGE_PAGE_MIN_BYTES", 0)

    image = random_image(11, 9, seed=13)
    v = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    batch = torch.cat([to_batch(image), to_batch(image[::-1].copy())])
    expected = [
        apply_dense(pymatting.cf_laplacian(im, 1e-5, radius), v[i : i + 1])
        for i, im in enumerate((image, image[::-1].copy()))
    ]
    for elements in (1, 2 * 9 * 3 * 25 * 2):
        monkeypatch.setattr(matting_windows, "_WHITEN_CHUNK_ELEMENTS", elements)
        monkeypatch.setattr(matting_windows, "_PRODUCT_CHUNK_ELEMENTS", elements)
        monkeypatch.setattr(matting_sparse, "_BAND_ELEMENTS", elements)
        for method in METHODS:
            out = MattingLaplacian.build(batch, radius, 1e-5, method=method)(v)
            for i in range(2):
                assert relative_error(out[i : i + 1], expected[i]) <= FLOAT64_RTOL


def stylised(photo: torch.Tensor) -> torch.Tensor:
    """A smooth, non-affine recolouring: what an output of the optimiser looks like."""
    r, g, b = photo[0]
    return torch.stack([r**0.8, 0.5 * g + 0.3 * b, b**1.3])[None].contiguous()


@pytest.mark.parametrize("method", METHODS)
def test_float32_product_on_a_real_photo(method):
    photo = to_batch(sample_photo("chelsea", 64))  # float32
    reference = matting_laplacian_sparse(photo.double())
    op = MattingLaplacian.build(photo, method=method)
    assert op.dtype == torch.float32
    smooth = stylised(photo)
    textured = (smooth + 0.01 * torch.randn_like(smooth)).clamp(0, 1)
    for v in (torch.rand_like(photo), textured):
        assert relative_error(op(v), apply_dense(reference, v)) <= FLOAT32_RTOL
    # On a v that is nearly locally affine in the photo, |M v| is ~1% of |v| and float32
    # cannot resolve it to 1e-6 of itself (rounding the window data alone costs ~2e-6): bound
    # the error by |v| instead, the scale of the terms that cancel.
    error = (op(smooth).double() - apply_dense(reference, smooth)).norm()
    assert error <= FLOAT32_RTOL * smooth.double().norm()


@pytest.mark.parametrize("method", METHODS)
def test_symmetric_psd_and_constants_cost_nothing(method):
    image = to_batch(random_image(7, 9, seed=5))
    op = MattingLaplacian.build(image, radius=1, eps=1e-7, method=method)
    u, v = torch.randn(2, 1, 3, 7, 9, dtype=torch.float64)
    assert torch.allclose((u * op(v)).sum(), (v * op(u)).sum(), rtol=1e-12, atol=1e-12)
    for x in (u, v, torch.rand_like(u)):
        assert float(op.energy(x)) >= -1e-10 * float((x * x).sum())
    ones = torch.ones_like(u)
    assert float(op(ones).abs().max()) <= 1e-12


def test_sparse_matrix_is_symmetric_psd_with_zero_row_sums():
    image = sample_photo("chelsea", 16).astype(np.float64)
    matrix = matting_laplacian_sparse(image, 1, 1e-7)
    assert matrix.has_canonical_format
    assert abs(matrix - matrix.T).max() <= 1e-12
    assert np.abs(matrix @ np.ones(matrix.shape[0])).max() <= 1e-12
    eigenvalues = np.linalg.eigvalsh(matrix.toarray())
    assert eigenvalues.min() >= -1e-10


@pytest.mark.parametrize("method", METHODS)
def test_affine_function_of_the_image_costs_about_nothing(method):
    eps = 1e-7
    image = to_batch(random_image(8, 10, seed=7))
    maps = torch.tensor([[0.5, -0.2, 0.1], [0.0, 1.0, 0.3], [-0.4, 0.2, 0.9]], dtype=torch.float64)
    v = torch.einsum("dc,bchw->bdhw", maps, image) + 0.1
    op = MattingLaplacian.build(image, radius=1, eps=eps, method=method)
    # alpha^T M alpha = min over a, b of the windowed fit + eps |a|^2 (Levin et al. eq. 5),
    # so an affine alpha costs at most eps |a|^2 per window: ~1e-6 here, against ~1e2 for
    # a random v.
    bound = eps * (6 * 8) * float((maps**2).sum())
    assert -1e-12 <= float(op.energy(v)) <= bound * (1 + 1e-6)
    assert float(op.energy(torch.rand_like(v))) > 1.0


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_of_loss_and_product(method):
    image = to_batch(random_image(4, 5, seed=11))
    op = MattingLaplacian.build(image, radius=1, eps=1e-5, method=method)
    v = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: photorealism_loss(op, x), (v,))
    assert torch.autograd.gradcheck(op, (v,))
    (grad,) = torch.autograd.grad(op.energy(v).sum(), v)
    assert torch.allclose(grad, 2 * op(v.detach()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_batch_uses_one_matrix_per_image(method):
    images = [random_image(5, 6, seed=s) for s in (1, 2)]
    batch = torch.cat([to_batch(im) for im in images])
    v = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    op = MattingLaplacian.build(batch, radius=1, eps=1e-5, method=method)
    out, energy = op(v), op.energy(v)
    assert out.shape == v.shape and energy.shape == (2,)
    for i, image in enumerate(images):
        expected = apply_dense(pymatting.cf_laplacian(image, 1e-5, 1), v[i : i + 1])
        assert relative_error(out[i : i + 1], expected) <= FLOAT64_RTOL
        assert torch.allclose(energy[i], (v[i : i + 1] * expected).sum(), rtol=1e-10)


def test_auto_method_and_inputs_of_every_accepted_kind():
    hwc = random_image(6, 7).astype(np.float32)
    assert MattingLaplacian.build(hwc).method == "sparse"  # small, CPU
    assert MattingLaplacian.build(hwc, memory_budget_bytes=0).method == "matrix_free"
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    a = matting_laplacian_sparse(hwc)
    for image in (chw, chw[None]):
        assert abs(matting_laplacian_sparse(image) - a).max() == 0.0
    for method in METHODS:  # a content image that requires grad is taken as a constant
        MattingLaplacian.build(chw[None].clone().requires_grad_(True), method=method)
    op = MattingLaplacian.build(chw, method="matrix_free").to("cpu")
    v = torch.rand(1, 3, 6, 7)
    module = PhotorealismLoss(chw[None])
    assert torch.allclose(module(v), photorealism_loss(op, v), rtol=1e-5)
    assert torch.allclose(photorealism_loss(chw[None], v), module(v), rtol=1e-5)


def _image(h=5, w=5, c=3, low=0.0, high=1.0):
    return torch.rand(1, c, h, w) * (high - low) + low


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": _image(c=4)}, r"RGB .*got \(1, 4, 5, 5\)"),
        ({"image": np.zeros((5, 5))}, r"RGB \(H, W, 3\); got shape \(5, 5\)"),
        ({"image": _image(high=2.0)}, r"in \[0, 1\]; got min .*max 1\.\d"),
        ({"image": _image(low=-1.0)}, r"in \[0, 1\]; got min -"),
        ({"image": torch.full((1, 3, 5, 5), float("nan"))}, r"finite"),
        ({"image": _image(h=2)}, r"at least 3x3 .*radius 1.*got 5x2 \(width x height"),
        ({"image": _image(h=4), "radius": 2}, r"at least 5x5 .*radius 2.*got 5x4 \(width x height"),
        ({"image": _image(), "radius": 0}, r"radius must be an integer >= 1; got 0"),
        ({"image": _image(), "radius": 1.5}, r"radius must be an integer >= 1; got 1\.5"),
        ({"image": _image(), "eps": 0.0}, r"eps must be a finite number > 0; got 0\.0"),
        ({"image": _image(), "eps": float("nan")}, r"eps must be .*got nan"),
        ({"image": _image(), "method": "dense"}, r"method must be one of .*got 'dense'"),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(kwargs, message):
    image = kwargs.pop("image")
    with pytest.raises(ValueError, match=message):
        MattingLaplacian.build(image, **kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_mismatched_vectors_raise(method):
    op = MattingLaplacian.build(_image(), method=method)
    with pytest.raises(ValueError, match=r"\(1, C, 5, 5\); got \(1, 3, 5, 6\)"):
        op(torch.rand(1, 3, 5, 6))
    with pytest.raises(ValueError, match=r"\(1, C, 5, 5\); got \(2, 3, 5, 5\)"):
        op.energy(torch.rand(2, 3, 5, 5))
    if method == "matrix_free":
        with pytest.raises(ValueError, match=r"torch.float32 like the operator; got torch.float64"):
            op(torch.rand(1, 3, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="one image; got a batch of 2"):
        matting_laplacian_sparse(torch.rand(2, 3, 5, 5))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_matrix_free_on_cuda_matches_cpu():
    image = torch.rand(2, 3, 9, 11)
    v = torch.rand(2, 3, 9, 11)
    cpu = MattingLaplacian.build(image, method="matrix_free")
    gpu = MattingLaplacian.build(image.cuda())
    assert gpu.method == "matrix_free"
    assert torch.allclose(gpu(v.cuda()).cpu(), cpu(v), rtol=1e-5, atol=1e-6)
