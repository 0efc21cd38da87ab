"""3D LUTs: reading both file formats, applying, generating, blending, libraries.

Every LUT file here is written by the test itself, from the formats' own definitions (a
.cube lists nodes with red changing fastest, then green, then blue; a Hald image holds node
n = r + S*g + S*S*b at raster position n), never through dpst.data.luts's own layout.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.interpolate import RegularGridInterpolator

from dpst.data.luts import (
    LATTICE_SIZE,
    LookLibrary,
    apply_lut,
    blend_luts,
    identity_lut,
    lut_from_function,
    random_look,
    read_lut,
    resample_lut,
)
from dpst.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


def IDENTITY(r, g, b):
    return r, g, b


def INVERT(r, g, b):
    return 1 - r, 1 - g, 1 - b


def SHUFFLE(r, g, b):
    # Affine, so trilinear interpolation reproduces it exactly; every output channel comes
    # from another input channel, so any mix-up of axes or channels shows.
    return 0.2 + 0.6 * g, 1 - b, 0.5 * r + 0.3 * b


def nodes(size):
    """Node values in file order: (r, g, b) arrays of length size^3, red fastest."""
    n = np.arange(size**3)
    return n % size / (size - 1), n // size % size / (size - 1), n // size**2 / (size - 1)


def write_cube(path, fn, size, header=""):
    out = np.stack(fn(*nodes(size)), axis=1)
    rows = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in out)
    text = f'TITLE "test"\n{header}LUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n'
    path.write_text(text + rows + "\n")
    return path


def write_hald(path, fn, level):
    out = np.stack(fn(*nodes(level * level)), axis=1)
    pixels = np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(pixels.reshape(level**3, level**3, 3)).save(path)
    return path


def random_table(rng):
    """An asymmetric LUT function: random values at the nodes of a 5-point lattice."""
    values = rng.uniform(0.05, 0.95, (5, 5, 5, 3))  # [r, g, b, channel]
    interp = RegularGridInterpolator([np.linspace(0, 1, 5)] * 3, values)
    return lambda r, g, b: tuple(interp(np.stack([r, g, b], axis=1)).T)


def random_colours(n=500, seed=0):
    colours = torch.rand(1, 3, 1, n, generator=torch.Generator().manual_seed(seed))
    colours[0, :, 0, :8] = torch.tensor(
        [[0, 1, 0, 1, 0, 1, 0, 1], [0, 0, 1, 1] * 2, [0] * 4 + [1] * 4]
    )
    return colours


def expected(fn, colours):
    r, g, b = colours[0, :, 0].double().numpy()
    return torch.from_numpy(np.stack(fn(r, g, b))).float()


@pytest.mark.parametrize("fn", [IDENTITY, INVERT, SHUFFLE])
@pytest.mark.parametrize("kind", ["cube17", "cube2", "hald2", "hald4", "hald8", "hald9"])
def test_read_lut_reproduces_the_written_function(tmp_path, kind, fn):
    if kind.startswith("cube"):
        path = write_cube(tmp_path / "look.cube", fn, int(kind[4:]))
    else:
        path = write_hald(tmp_path / "look.png", fn, int(kind[4:]))
    lut = read_lut(path)
    size = int(kind[4:]) if kind.startswith("cube") else int(kind[4:]) ** 2
    assert lut.shape == (size, size, size, 3) and lut.dtype == torch.float32
    colours = random_colours()
    got = apply_lut(colours, lut)[0, :, 0]
    assert (got - expected(fn, colours)).abs().max() <= 1 / 255


@pytest.mark.parametrize("kind", ["cube", "hald"])
def test_read_lut_agrees_with_pillow_lut_and_pillow(tmp_path, kind):
    """pillow-lut's loaders and Pillow's own Color3DLUT filter as an independent oracle."""
    from pillow_lut import load_cube_file, load_hald_image

    fn = random_table(np.random.default_rng(1))
    if kind == "cube":
        path = write_cube(tmp_path / "look.cube", fn, 9)
        oracle = load_cube_file(str(path))
    else:
        path = write_hald(tmp_path / "look.png", fn, 3)
        oracle = load_hald_image(str(path))
    pixels = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(pixels).filter(oracle), dtype=np.float32) / 255
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    got = apply_lut(image, read_lut(path))[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() <= 1.5 / 255


def check_one_line(err, path):
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda t: t.replace("LUT_3D_SIZE 3", "LUT_3D_SIZE three"), "invalid literal"),
        (lambda t: t.replace("LUT_3D_SIZE 3\n", ""), "No size found"),
        (lambda t: t.rsplit("\n", 2)[0] + "\n", "Actual length: 78"),
        (lambda t: t + "0.5 0.5 0.5\n", "Actual length: 84"),
        (lambda t: t.replace("1.000000 1.000000 1.000000", "1.0 x 1.0"), "Not a number on line 31"),
        (lambda t: t.replace("0.500000 0.000000 0.000000", "0.5 0.0"), "Wrong number of colors"),
        (lambda t: t.replace("0.500000 0.000000 0.000000", "nan 0 0"), "non-finite"),
        (lambda t: t.replace("DOMAIN_MAX 1 1 1", "DOMAIN_MAX 1 1 4"), "domain 0..1"),
        (lambda t: "LUT_1D_SIZE 3\n" + t, "1D LUT"),
        (lambda t: "", "No size found"),
    ],
)
def test_malformed_cube_gives_a_one_line_input_error(tmp_path, damage, problem):
    path = write_cube(tmp_path / "bad.cube", IDENTITY, 3)
    path.write_text(damage(path.read_text()))
    with pytest.raises(InputError, match=problem) as err:
        read_lut(path)
    check_one_line(err, path)


def test_unreadable_hald_and_missing_files_give_one_line_input_errors(tmp_path):
    good = write_hald(tmp_path / "good.png", INVERT, 4).read_bytes()
    cases = {"truncated.png": good[: len(good) // 2], "text.png": b"not a png", "nothing.tif": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    Image.new("RGB", (60, 64)).save(tmp_path / "oblong.png")
    Image.new("RGB", (30, 30)).save(tmp_path / "square.png")
    for name, problem in [
        ("truncated.png", "not a readable Hald CLUT image"),
        ("text.png", "not a readable Hald CLUT image"),
        ("nothing.tif", "not a readable Hald CLUT image"),
        ("oblong.png", "60x64 px is no Hald CLUT"),
        ("square.png", "30x30 px is no Hald CLUT"),
        ("missing.cube", "no such file"),
        ("look.3dl", "unknown LUT format"),
    ]:
        with pytest.raises(InputError, match=problem) as err:
            read_lut(tmp_path / name)
        check_one_line(err, tmp_path / name)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_apply_lut_matches_scipy_trilinear_interpolation(dtype, tol):
    gen = torch.Generator().manual_seed(3)
    luts = torch.rand(2, 6, 6, 6, 3, generator=gen, dtype=torch.float64)
    image = torch.rand(2, 3, 7, 9, generator=gen, dtype=torch.float64)
    image[:, :, 0, :3] = torch.tensor([0.0, 1.0, 0.4])[:, None]  # on the faces and corners
    got = apply_lut(image.to(dtype), luts.to(dtype)).double()
    assert got.shape == image.shape and got.dtype == torch.float64
    axis = np.linspace(0, 1, 6)
    for i in range(2):
        points = image[i].permute(1, 2, 0).numpy()[..., ::-1]  # (b, g, r) = lut's axes
        for c in range(3):
            want = RegularGridInterpolator([axis] * 3, luts[i, ..., c].numpy())(points)
            assert np.abs(got[i, c].numpy() - want).max() < tol
    shared = apply_lut(image.to(dtype), luts[0].to(dtype))  # one LUT for the whole batch
    assert torch.allclose(shared[0], got[0].to(dtype))


def test_apply_lut_clamps_and_is_differentiable():
    gen = torch.Generator().manual_seed(4)
    image = (
        0.05 + 0.9 * torch.rand(2, 3, 2, 2, generator=gen, dtype=torch.float64)
    ).requires_grad_()
    lut = (0.1 + 0.8 * torch.rand(3, 3, 3, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(apply_lut, (image, lut))
    overshoot = identity_lut(5) * 1.2 - 0.1
    out = apply_lut(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1), overshoot)
    assert out.flatten().tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_identity_resample_function_and_blend():
    colours = random_colours()
    assert torch.allclose(apply_lut(colours, identity_lut(2)), colours, atol=1e-6)
    assert torch.equal(lut_from_function(lambda x: x, 9), identity_lut(9))
    shuffled = lut_from_function(lambda x: torch.stack(SHUFFLE(*x.T), dim=1), 3)
    want = expected(SHUFFLE, colours)
    assert torch.allclose(apply_lut(colours, shuffled)[0, :, 0], want, atol=1e-6)
    bigger = resample_lut(shuffled, 7)  # affine LUTs resample exactly
    assert bigger.shape == (7, 7, 7, 3)
    assert torch.allclose(apply_lut(colours, bigger)[0, :, 0], want, atol=1e-6)
    assert resample_lut(torch.stack([shuffled] * 2), 5).shape == (2, 5, 5, 5, 3)
    mixed = blend_luts(identity_lut(17), shuffled, 0.25)
    assert mixed.shape == (17, 17, 17, 3)
    both = 0.75 * colours[0, :, 0] + 0.25 * want
    assert torch.allclose(apply_lut(colours, mixed)[0, :, 0], both, atol=1e-6)
    assert torch.equal(blend_luts(shuffled, identity_lut(3), 0.0), shuffled)


def test_random_look_is_seeded_bounded_and_plausible():
    def look(seed, size=LATTICE_SIZE):
        return random_look(torch.Generator().manual_seed(seed), size)

    assert torch.equal(look(0), look(0))
    assert not torch.equal(look(0), look(1))
    assert look(5, size=9).shape == (9, 9, 9, 3)
    looks = torch.stack([look(seed) for seed in range(40)])
    assert looks.shape == (40, 17, 17, 17, 3) and looks.dtype == torch.float32
    assert looks.min() >= 0 and looks.max() <= 1
    change = (looks - identity_lut()).abs().mean(dim=(1, 2, 3, 4))
    assert (change > 0.01).sum() >= 30  # nearly all do something...
    assert change.max() < 0.3  # ...and none wrecks the photo
    ramp = torch.linspace(0, 1, 17)
    diagonal = torch.arange(17)
    neutral = looks[:, diagonal, diagonal, diagonal].transpose(1, 2)  # (N, 3, 17)
    luma = (neutral * torch.tensor([0.2126, 0.7152, 0.0722])[:, None]).sum(1)
    assert (luma.diff(dim=1) >= -1e-6).all()  # brightness order kept along the grey axis
    assert (luma[:, 8] - ramp[8]).abs().max() < 0.3  # mid-grey stays mid


def test_look_library_reads_skips_and_splits(tmp_path):
    write_cube(tmp_path / "b_invert.cube", INVERT, 5)
    write_cube(tmp_path / "a_shuffle.cube", SHUFFLE, 17)
    write_hald(tmp_path / "c_hald.png", INVERT, 4)
    (tmp_path / "d_broken.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n")
    (tmp_path / "notes.txt").write_text("not a LUT")
    library = LookLibrary.from_folder(tmp_path, size=9)
    assert library.names == ["a_shuffle.cube", "b_invert.cube", "c_hald.png"]
    assert len(library) == 3 and library.luts.shape == (3, 9, 9, 9, 3)
    assert len(library.problems) == 1 and "d_broken.cube" in library.problems[0]
    assert "\n" not in library.problems[0]
    colours = random_colours()
    got = apply_lut(colours.expand(3, -1, -1, -1), library.luts)[:, :, 0]
    assert (got[1] - expected(INVERT, colours)).abs().max() < 1e-5
    assert (got[2] - expected(INVERT, colours)).abs().max() <= 1 / 255

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "only.cube").write_text("garbage")
    with pytest.raises(InputError, match=r"no readable LUT.*only\.cube") as err:
        LookLibrary.from_folder(tmp_path / "sub")
    check_one_line(err, tmp_path / "sub")
    with pytest.raises(InputError, match="not a folder"):
        LookLibrary.from_folder(tmp_path / "nowhere")


def test_split_is_deterministic_disjoint_and_stable():
    def library(n):
        names = [f"look_{i:03d}.cube" for i in range(n)]
        return LookLibrary(names, torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1))

    train, val = library(200).split(0.2, seed=7)
    assert set(train.names).isdisjoint(val.names)
    assert sorted(train.names + val.names) == library(200).names
    assert 20 <= len(val) <= 60
    assert [int(v) for v in val.luts.flatten()] == [int(n[5:8]) for n in val.names]
    again = library(200).split(0.2, seed=7)
    assert again[0].names == train.names and again[1].names == val.names
    assert library(200).split(0.2, seed=8)[1].names != val.names
    bigger_val = library(300).split(0.2, seed=7)[1].names
    assert [n for n in bigger_val if n < "look_200"] == val.names  # new files move no others
    assert len(library(10).split(0.0)[1]) == 0 and len(library(10).split(1.0)[0]) == 0
    with pytest.raises(InputError, match="validation_fraction"):
        library(3).split(1.5)
