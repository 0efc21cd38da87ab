"""3D LUT export: the fit against dense solvers, the lattice operators against closed forms,
and the written files against independent readers (Pillow, pillow-lut, ffmpeg's lut3d)."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from PIL import Image
from scipy.interpolate import RegularGridInterpolator
from scipy.optimize import lsq_linear
from scipy.sparse.linalg import splu

from dpst.errors import InputError
from dpst.serve.runtime.look_export import export_lut
from dpst.serve.runtime.lut_files import hald_image, read_cube, write_cube, write_hald
from dpst.serve.runtime.lut_fit import (
    AFFINE_RIDGE,
    LutFitConfig,
    apply_lut,
    curvature_operators,
    fit_lut,
    identity_lut,
    normal_equations,
    solve_normal_equations,
    splat_matrix,
)


def smooth_look(rgb: np.ndarray) -> np.ndarray:
    """A nonlinear but gentle look (gamma, channel mix, lift), inside [0, 1]."""
    x = np.clip(rgb, 0, 1) ** np.array([0.8, 1.0, 1.2])
    mixed = x @ np.array([[0.85, 0.1, 0.05], [0.05, 0.9, 0.05], [0.0, 0.15, 0.85]]).T
    return 0.04 + 0.9 * mixed


def interpolator(lut: np.ndarray) -> RegularGridInterpolator:
    """SciPy's trilinear interpolation of a ``[b, g, r]`` LUT, queried with (r, g, b)."""
    ramp = np.linspace(0, 1, lut.shape[0])
    return RegularGridInterpolator((ramp, ramp, ramp), lut.transpose(2, 1, 0, 3))


def test_splatting_and_application_are_scipys_trilinear_interpolation():
    rng = np.random.default_rng(0)
    lut = rng.random((5, 5, 5, 3))
    colours = np.concatenate([rng.random((300, 3)), np.eye(3), np.ones((1, 3)), np.zeros((1, 3))])
    expected = interpolator(lut)(colours)
    np.testing.assert_allclose(splat_matrix(colours, 5) @ lut.reshape(-1, 3), expected, atol=1e-12)
    np.testing.assert_allclose(apply_lut(colours, lut), expected, atol=1e-12)


def test_curvature_is_zero_for_affine_maps_and_exact_for_quadratics():
    size = 6
    h = 1 / (size - 1)
    nodes = identity_lut(size).reshape(-1, 3)
    ops = curvature_operators(size)

    def energy(values: np.ndarray) -> float:
        return sum(w * float(np.sum((op @ values) ** 2)) for w, op in ops)

    affine = nodes @ np.array([[0.3, -1.2, 0.5], [2.0, 0.1, 0.0], [0.4, 0.4, 0.4]]) + 0.7
    assert energy(affine) < 1e-20
    red, green = nodes[:, 0], nodes[:, 1]
    # r^2: second difference 2 h^2 at the (S - 2) S^2 interior nodes along red, nothing else.
    assert energy(red**2) == pytest.approx((2 * h * h) ** 2 * (size - 2) * size**2)
    # r g: mixed difference h^2 on (S - 1)^2 S cell faces, counted twice.
    assert energy(red * green) == pytest.approx(2 * (h * h) ** 2 * (size - 1) ** 2 * size)


def dense_problem(x, y, config):
    """The objective as one stacked dense least-squares problem, column by column."""
    size, count = config.size, len(x)
    rows = [splat_matrix(x, size).toarray() / np.sqrt(count)]
    targets = [y / np.sqrt(count)]
    for weight, op in curvature_operators(size):
        scale = np.sqrt(config.smoothness * (size - 1) * weight)
        rows.append(scale * op.toarray())
        targets.append(np.zeros((op.shape[0], 3)))
    # The prior: the affine map of the colours, fitted with its own ridge (numpy's lstsq).
    design = np.hstack([x, np.ones((count, 1))])
    ridge = np.sqrt(AFFINE_RIDGE) * np.eye(4)
    eye = np.sqrt(AFFINE_RIDGE) * np.vstack([np.eye(3), np.zeros((1, 3))])
    weights = np.linalg.lstsq(
        np.vstack([design / np.sqrt(count), ridge]), np.vstack([y / np.sqrt(count), eye]), None
    )[0]
    nodes = identity_lut(size).reshape(-1, 3)
    prior = np.hstack([nodes, np.ones((len(nodes), 1))]) @ weights
    rows.append(np.sqrt(config.anchor) * np.eye(size**3))
    targets.append(np.sqrt(config.anchor) * prior)
    return np.vstack(rows), np.vstack(targets)


def test_fit_matches_dense_least_squares_solvers():
    rng = np.random.default_rng(1)
    config = LutFitConfig(size=5, smoothness=1e-3, anchor=1e-4)
    x = rng.random((400, 3)) * 0.8 + 0.1
    y = smooth_look(x) + 0.01 * rng.standard_normal((400, 3))
    system, rhs = normal_equations(x, y, config)
    ours = solve_normal_equations(system, rhs, config.size)
    matrix, target = dense_problem(x, y, config)
    lstsq = np.linalg.lstsq(matrix, target, rcond=None)[0]
    np.testing.assert_allclose(ours, lstsq, atol=1e-8)
    for c in range(3):
        bounded = lsq_linear(matrix, target[:, c], tol=1e-12, lsmr_tol="auto")
        np.testing.assert_allclose(ours[:, c], bounded.x, atol=1e-6)


def test_iterative_solver_matches_a_direct_solve_on_a_larger_lattice():
    rng = np.random.default_rng(2)
    config = LutFitConfig(size=13)
    x = rng.random((3000, 3)) ** 2  # dark colours dense, bright ones sparse: empty cells
    system, rhs = normal_equations(x, smooth_look(x), config)
    direct = splu(sp.csc_matrix(system)).solve(rhs)
    np.testing.assert_allclose(solve_normal_equations(system, rhs, config.size), direct, atol=1e-6)


def test_affine_look_is_reproduced_everywhere_even_without_colours_there():
    rng = np.random.default_rng(3)
    content = (rng.random((40, 40, 3)) * 0.3 + 0.35).astype(np.float32)  # a small colour box
    mix = np.array([[0.7, 0.2, 0.0], [0.1, 0.6, 0.1], [0.05, 0.1, 0.6]])
    lut = fit_lut(content, content @ mix.T + 0.1, LutFitConfig(size=17))
    nodes = identity_lut(17)
    np.testing.assert_allclose(lut, nodes @ mix.T + 0.1, atol=1e-5)


def test_a_photo_of_greys_keeps_the_other_directions_near_the_identity():
    grey = np.repeat(np.linspace(0, 1, 400)[:, None], 3, axis=1).reshape(20, 20, 3)
    lut = fit_lut(grey, np.sqrt(grey), LutFitConfig(size=9))
    red = lut[0, 0, -1]  # pure red: nothing in the photo says where it goes
    assert np.isfinite(lut).all() and red[0] > red[1] + 0.5 and red[0] > red[2] + 0.5


def test_nonlinear_look_is_fitted_closely():
    rng = np.random.default_rng(4)
    content = rng.random((64, 64, 3))
    lut = fit_lut(content, smooth_look(content), LutFitConfig(size=17))
    assert np.abs(apply_lut(content, lut) - smooth_look(content)).mean() < 2e-3


def test_identity_look_exports_an_identity_lut(tmp_path, photo):
    result = export_lut(photo, photo, tmp_path / "id.cube", LutFitConfig(size=9))
    np.testing.assert_allclose(read_cube(tmp_path / "id.cube"), identity_lut(9), atol=1e-6)
    assert result.mean_de2000 < 1e-3
    text = (tmp_path / "id.cube").read_text().splitlines()
    assert "LUT_3D_SIZE 9" in text and "DOMAIN_MIN 0.0 0.0 0.0" in text
    assert "DOMAIN_MAX 1.0 1.0 1.0" in text and len(text) == 4 + 9**3


@pytest.fixture
def look_cube(tmp_path):
    lut = np.round(smooth_look(identity_lut(17).reshape(-1, 3)).reshape(17, 17, 17, 3), 6)
    return write_cube(tmp_path / "look.cube", lut), lut


def test_cube_read_back_by_pillow_lut_maps_colours_within_one_level(look_cube):
    from pillow_lut import load_cube_file

    path, lut = look_cube
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(colours).filter(load_cube_file(str(path))), np.float64)
    ours = apply_lut(colours / 255.0, lut) * 255.0
    assert np.abs(pillow - ours).max() <= 1.0
    np.testing.assert_allclose(read_cube(path), lut, atol=0)


def test_hald_clut_is_read_back_by_pillow_lut_as_the_same_lut(tmp_path, look_cube):
    from pillow_lut import load_hald_image

    _, lut = look_cube
    write_hald(tmp_path / "look.png", lut, level=4)
    table = load_hald_image(str(tmp_path / "look.png"))
    assert table.size == (16, 16, 16)
    values = np.asarray(table.table, dtype=np.float64).reshape(16, 16, 16, 3)
    np.testing.assert_allclose(values, apply_lut(identity_lut(16), lut), atol=0.5 / 255 + 1e-6)
    assert hald_image(lut, 4).shape == (64, 64, 3)


def lut3d_with_pyav(path, colours: np.ndarray) -> np.ndarray:
    """ffmpeg's lut3d filter (libavfilter through PyAV) on an RGB24 picture."""
    av = pytest.importorskip("av", reason="PyAV is not installed")
    frame = av.VideoFrame.from_ndarray(colours, format="rgb24")
    graph = av.filter.Graph()
    height, width = colours.shape[:2]
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=Fraction(1, 1))
    lut = graph.add("lut3d", f"file={path}:interp=trilinear")
    sink = graph.add("buffersink")
    source.link_to(lut)
    lut.link_to(sink)
    graph.configure()
    graph.push(frame)
    return graph.pull().to_ndarray()


def test_cube_opens_in_ffmpegs_lut3d_through_libavfilter(look_cube):
    path, lut = look_cube
    colours = np.random.default_rng(6).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    out = lut3d_with_pyav(path, colours).astype(np.float64)
    assert np.abs(out - apply_lut(colours / 255.0, lut) * 255.0).max() <= 1.0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed")
def test_cube_opens_in_the_ffmpeg_program(tmp_path, look_cube):
    path, lut = look_cube
    colours = np.random.default_rng(7).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    Image.fromarray(colours).save(tmp_path / "in.png")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "in.png"), "-vf",
         f"lut3d=file={path}:interp=trilinear", "-pix_fmt", "rgb24", str(tmp_path / "out.png")],
        check=True, timeout=60,
    )  # fmt: skip
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"), np.float64)
    assert np.abs(out - apply_lut(colours / 255.0, lut) * 255.0).max() <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "this is not a LUT\n",
        "LUT_3D_SIZE 2\n0 0 0\n1 0 0\n",  # too few rows
        "LUT_3D_SIZE 2\n" + "0 0 zero\n" * 8,
        "LUT_3D_SIZE 2\nDOMAIN_MAX 4 4 4\n" + "0 0 0\n" * 8,
        "LUT_1D_SIZE 2\n0 0 0\n1 1 1\n",
        "LUT_3D_SIZE 2\n" + "nan 0 0\n" * 8,
        "LUT_3D_SIZE 99\n" + "0 0 0\n" * 8,
    ],
)
def test_corrupt_cube_is_one_line_input_error(tmp_path, text):
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_cube(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_fit_inputs_are_input_errors(photo):
    with pytest.raises(InputError, match="one size"):
        fit_lut(photo, photo[:10])
    with pytest.raises(InputError, match=r"2\.\.65"):
        fit_lut(photo, photo, LutFitConfig(size=1))
