import os

import numpy as np
import pytest
from PIL import Image

from dpst.errors import InputError
from dpst.imageio import read_image, write_image, write_json


def test_missing_empty_and_non_image_files_raise_one_line(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "text.png")


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I"])
def test_modes_convert_to_rgb(tmp_path, mode):
    base = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8) * 5)
    img = base.convert(mode) if mode not in ("I;16", "I") else base.convert("I")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base, dtype=np.uint16) * 257)
        assert img.mode == "I;16"
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I") else "x.png")
    img.save(path)
    arr = read_image(path)
    assert arr.shape == (6, 8, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0
    expected = np.asarray(base, dtype=np.float32) / 255.0
    if mode != "CMYK":  # CMYK round trip through Pillow is lossy by design
        np.testing.assert_allclose(arr[..., 0], expected, atol=1.5 / 255)


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((4, 10, 3), np.uint8)
    arr[:, :5] = 255
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape[:2] == (10, 4)


def test_atomic_writes_round_trip(tmp_path):
    image = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    write_image(tmp_path / "o.png", image)
    np.testing.assert_allclose(read_image(tmp_path / "o.png"), image, atol=0.5 / 255 + 1e-6)
    write_json(tmp_path / "o.json", {"a": 1})
    assert (tmp_path / "o.json").read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json", "o.png"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):

    write_json(tmp_path / "r.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_decompression_bombs_are_one_line_errors(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    # 4096 pixels is over twice a limit of 1000: Pillow refuses before decoding.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError) as err:
        read_image(path)
    message = str(err.value)
    assert "too large to open safely" in message and "big.png" in message
    assert "\n" not in message
    from dpst.cli import main

    assert main(["fast", str(path), str(path), "-o", str(tmp_path / "o.png")]) == 2


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The oracle: straight-alpha "over" onto white, per pixel, in 8-bit units."""
    a = alpha[..., None].astype(np.float64) / 255.0
    return (rgb.astype(np.float64) / 255.0) * a + 1.0 * (1.0 - a)


def test_transparent_pixels_are_flattened_onto_white_with_one_warning(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgba[:, :3, 3] = 0  # hidden: a bright red no viewer shows must not reach the result
    rgba[:, :3, :3] = (255, 0, 0)
    rgba[:, 6, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with pytest.warns(UserWarning) as caught:
        arr = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(arr, _composite(rgba[..., :3], rgba[..., 3]), atol=1e-6)
    assert (arr[:, :3] == 1.0).all()  # the hidden red reads as the white background
    (message,) = [str(w.message) for w in caught]
    expected = f"{(rgba[..., 3] < 255).mean():.0%}"
    assert "a.png" in message and expected in message and "white" in message
    assert "\n" not in message


def test_grey_alpha_and_transparent_colours_are_flattened_too(tmp_path):
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    alpha = np.full((4, 6), 255, np.uint8)
    alpha[0] = 0
    alpha[1] = 128
    Image.fromarray(np.stack([grey, alpha], axis=2), "LA").save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="la.png"):
        arr = read_image(tmp_path / "la.png")
    np.testing.assert_allclose(arr[..., 0], _composite(grey[..., None], alpha)[..., 0], atol=1e-6)
    # A palette image whose transparent entry is used, and an RGB colour key (PNG tRNS).
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:2] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "key.png", transparency=(0, 0, 255))
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.gif", transparency=0)
    for name in ("key.png", "p.gif"):
        img = Image.open(tmp_path / name)
        expected = np.asarray(img.convert("RGBA"))
        img.close()
        with pytest.warns(UserWarning, match=name):
            arr = read_image(tmp_path / name)
        np.testing.assert_allclose(arr, _composite(expected[..., :3], expected[..., 3]), atol=1e-6)
    with pytest.warns(UserWarning, match="50% of the pixels"):
        assert (read_image(tmp_path / "key.png")[:2] == 1.0).all()


def test_an_opaque_alpha_channel_changes_nothing_and_says_nothing(tmp_path, recwarn):
    rgb = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_image(tmp_path / "opaque.png"), rgb / np.float32(255))
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("name", ["clip.gif", "clip.png", "clip.webp"])
def test_animations_are_refused_in_one_line(tmp_path, name):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], lossless=True)
    with pytest.raises(InputError) as err:
        read_image(tmp_path / name)
    message = str(err.value)
    assert name in message and "animation (3 frames)" in message and "\n" not in message


def test_still_gifs_and_multi_page_tiffs_are_read(tmp_path):
    Image.new("RGB", (8, 6), "red").save(tmp_path / "still.gif")
    np.testing.assert_allclose(read_image(tmp_path / "still.gif")[0, 0], [1.0, 0.0, 0.0])
    pages = [Image.new("RGB", (8, 6), "blue"), Image.new("RGB", (4, 3), "red")]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    arr = read_image(tmp_path / "pages.tif")  # page 1 is the picture; the rest, previews
    assert arr.shape == (6, 8, 3) and (arr[..., 2] == 1.0).all()


def test_the_cli_refuses_an_animation_in_one_line(tmp_path, capsys):
    from dpst.cli import main

    frames = [Image.new("RGB", (16, 12), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (16, 12), "green").save(tmp_path / "s.png")
    argv = ["segment", str(tmp_path / "clip.gif"), str(tmp_path / "s.png")]
    assert main([*argv, "--out-dir", str(tmp_path / "out"), "--segmenter", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "clip.gif: an animation (2 frames)" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
def test_tiff_outputs_are_8_bit_rgb_and_round_trip(tmp_path, suffix):
    image = np.random.default_rng(2).random((5, 7, 3), dtype=np.float32)
    write_image(tmp_path / f"o{suffix}", image)
    with Image.open(tmp_path / f"o{suffix}") as img:
        assert (img.format, img.mode) == ("TIFF", "RGB")
    np.testing.assert_allclose(read_image(tmp_path / f"o{suffix}"), image, atol=0.5 / 255 + 1e-6)


def test_the_cli_warns_in_one_line_about_a_transparent_photo(tmp_path, capsys):
    from dpst.cli import main

    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[:, 8:, 3] = 255  # the left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    Image.new("RGB", (16, 12), "green").save(tmp_path / "s.png")
    argv = ["segment", str(tmp_path / "cutout.png"), str(tmp_path / "s.png"), "--out-dir"]
    assert main([*argv, str(tmp_path / "out"), "--segmenter", "none"]) == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dpst: warning: ") and "cutout.png: 50% of the pixels" in line


def test_resize_long_side_takes_8_bit_photos_as_float_copies():
    from dpst.imageio import resize_long_side

    photo = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    as_float = photo.astype(np.float32) / 255
    small = resize_long_side(photo, 20)
    assert small.dtype == np.float32 and small.shape == (15, 20, 3)
    # The float path is the oracle. In 8 bits Pillow rounds to 1/255 and clamps between its
    # horizontal and vertical passes, which on noise (Lanczos overshoot at its worst) moves a
    # few pixels by several levels.
    gap = np.abs(small - resize_long_side(as_float, 20))
    assert gap.max() <= 5 / 255 and gap.mean() <= 0.6 / 255
    np.testing.assert_array_equal(resize_long_side(photo, 40), as_float)  # same size: float
