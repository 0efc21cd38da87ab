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
    import os

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
