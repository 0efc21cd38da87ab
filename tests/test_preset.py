"""Look files (presets): the format round trip, the same result as the style photo gives, and
damaged, foreign or hostile files refused in one line. Uses the model bundled with dpst."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.errors import InputError
from dpst.imageio import read_image, write_image
from dpst.labels.one_pass import prepare_one_pass
from dpst.serve.runtime.looks import (
    THUMBNAIL_SIDE,
    apply_look,
    content_labels_for_look,
    encode_look,
    look_bytes,
    look_to_bytes,
    read_look,
    write_look,
)
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer
from tests.conftest import sample_photo

pytestmark = pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")


@pytest.fixture(scope="module")
def stylizer():
    return FastStylizer(BUNDLED_MODEL, threads=1)


@pytest.fixture(scope="module")
def images():
    content = sample_photo("chelsea", 48)
    style = sample_photo("coffee", 40) * np.array([1.0, 0.7, 0.5], dtype=np.float32)
    return content, style


def halves(image: np.ndarray, left: int, right: int) -> np.ndarray:
    labels = np.full(image.shape[:2], left, dtype=np.int64)
    labels[:, image.shape[1] // 2 :] = right
    return labels


def test_look_round_trips_through_its_bytes(stylizer, images):
    _, style = images
    look = encode_look(stylizer, style, halves(style, 3, 7), "coffee.png")
    back = read_look(look_to_bytes(look))
    assert back.model_id == stylizer.metadata["model_id"] == look.model_id
    assert back.label_ids == (3, 7) and back.style_name == "coffee.png"
    for ours, theirs in zip(look.code, back.code, strict=True):
        np.testing.assert_array_equal(ours, theirs)
        assert theirs.dtype == np.float32
    thumbnail = Image.open(io.BytesIO(back.thumbnail))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) <= THUMBNAIL_SIDE
    with zipfile.ZipFile(io.BytesIO(look_to_bytes(look))) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "dpst-look" and manifest["format_version"] == 1


def test_look_gives_what_the_style_photo_gives(stylizer, images):
    content, style = images
    look = read_look(look_bytes(stylizer, style))
    np.testing.assert_array_equal(
        apply_look(stylizer, look, content), stylizer.stylize(content, style)
    )


def test_look_with_masks_gives_what_the_masks_give(stylizer, images):
    content, style = images
    content_labels, style_labels = halves(content, 7, 3), halves(style, 3, 7)
    look = read_look(look_bytes(stylizer, style, style_labels))
    prepared = prepare_one_pass(content_labels, style_labels, content, style, stylizer.max_labels)
    expected = stylizer.stylize(content, style, prepared[0], prepared[1])
    got = apply_look(stylizer, look, content, content_labels)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_content_labels_missing_from_the_look_take_the_closest_colour(stylizer, images):
    _, style = images
    look = encode_look(stylizer, style, halves(style, 1, 2))
    means = np.array(look.code[2][0, :2])  # style_colour_mean of labels 1 and 2
    painted = np.zeros((4, 4, 3), np.float32)
    painted[:, :2], painted[:, 2:] = means[1], means[0]
    labels = halves(painted, 5, 2)  # 5 is new; it looks like label 2
    out = content_labels_for_look(look, painted, labels)
    np.testing.assert_array_equal(out, np.ones((4, 4), int))
    # 8-bit pixels, as dpst fast reads photos, are matched on the same scale.
    eight_bit = np.rint(painted * 255).astype(np.uint8)
    np.testing.assert_array_equal(content_labels_for_look(look, eight_bit, labels), out)
    with pytest.raises(InputError, match="without a style mask"):
        content_labels_for_look(encode_look(stylizer, style), painted, labels)


def test_look_of_another_model_is_refused(stylizer, images):
    content, style = images
    look = replace(encode_look(stylizer, style), model_id="0123456789abcdef")
    with pytest.raises(InputError, match="made with model 0123456789abcdef") as err:
        apply_look(stylizer, read_look(look_to_bytes(look)), content)
    assert "\n" not in str(err.value)


def test_code_that_does_not_fit_the_model_is_an_input_error(stylizer, images):
    content, _ = images
    with pytest.raises(InputError, match="does not fit"):
        stylizer.stylize_with_code(content, (np.zeros((1, 2, 3), np.float32),) * 4)


def rewrite(data: bytes, change) -> bytes:
    """The look file with its members passed through ``change(name, bytes) -> bytes``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            new = change(name, src.read(name))
            if new is not None:
                dst.writestr(name, new)
    return out.getvalue()


class Trap:
    """Unpickling this leaves a mark: reading a look must never get that far."""

    def __reduce__(self):
        return (TRAPPED.append, ("unpickled",))


TRAPPED: list[str] = []


def manifest_with(**fields):
    def change(name, data):
        if name != "manifest.json":
            return data
        return json.dumps({**json.loads(data), **fields})

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n, d: None if n == "style_std.npy" else d, "no style_std.npy"),
        (lambda n, d: b"{" if n == "manifest.json" else d, "not JSON"),
        (manifest_with(format="something-else"), "not a dpst look file"),
        (manifest_with(format_version=99), "version 99"),
        (manifest_with(label_ids=[2, 1]), "manifest fields"),
        (lambda n, d: d[:-40] if n == "style_mean.npy" else d, "style_mean"),
        (
            lambda n, d: pickle_array() if n == "style_mean.npy" else d,
            "style_mean",
        ),
    ],
)
def test_damaged_looks_are_refused_in_one_line(stylizer, images, change, message):
    data = rewrite(look_bytes(stylizer, images[1]), change)
    with pytest.raises(InputError, match=message) as err:
        read_look(data)
    assert "\n" not in str(err.value) and not TRAPPED


def pickle_array() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Trap()], dtype=object), allow_pickle=True)
    assert pickle.dumps(Trap())  # the trap is real: loading it would call TRAPPED.append
    return buffer.getvalue()


def test_truncated_or_flipped_files_are_refused(stylizer, images, tmp_path):
    data = look_bytes(stylizer, images[1])
    for bad in (data[: len(data) // 2], b"PK\x03\x04" + bytes(100), b"not a zip"):
        with pytest.raises(InputError, match="look"):
            read_look(bad)
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside a compressed member: its CRC fails
    with pytest.raises(InputError):
        read_look(bytes(flipped))
    with pytest.raises(InputError, match="no such file"):
        read_look(tmp_path / "missing.dpst")


@pytest.fixture
def files(tmp_path, images):
    content, style = images
    write_image(tmp_path / "content.png", content)
    write_image(tmp_path / "style.png", style)
    return tmp_path


def test_cli_look_then_fast_with_it_equals_fast_with_the_photo(files, capsys):
    d = files
    assert main(["look", str(d / "style.png"), "-o", str(d / "l.dpst"), "--threads", "1"]) == 0
    assert main(["fast", str(d / "content.png"), "--look", str(d / "l.dpst"),
                 "-o", str(d / "a.png"), "--threads", "1"]) == 0  # fmt: skip
    assert main(["fast", str(d / "content.png"), str(d / "style.png"), "--masks", "none",
                 "-o", str(d / "b.png"), "--threads", "1"]) == 0  # fmt: skip
    np.testing.assert_array_equal(read_image(d / "a.png"), read_image(d / "b.png"))


def test_cli_fast_with_a_look_and_a_content_mask_equals_the_masked_pair(files, capsys):
    d = files
    content, style = read_image(d / "content.png"), read_image(d / "style.png")
    Image.fromarray(halves(content, 7, 3).astype(np.uint8)).save(d / "cm.png")  # label maps
    Image.fromarray(halves(style, 3, 7).astype(np.uint8)).save(d / "sm.png")
    masks = ["--mask-kind", "labels", "--threads", "1"]
    assert main(["look", str(d / "style.png"), "--style-mask", str(d / "sm.png"),
                 "-o", str(d / "l.dpst"), *masks]) == 0  # fmt: skip
    assert main(["fast", str(d / "content.png"), "--look", str(d / "l.dpst"), "--content-mask",
                 str(d / "cm.png"), "-o", str(d / "a.png"), *masks]) == 0  # fmt: skip
    assert main(["fast", str(d / "content.png"), str(d / "style.png"), "--content-mask",
                 str(d / "cm.png"), "--style-mask", str(d / "sm.png"), "-o", str(d / "b.png"),
                 *masks]) == 0  # fmt: skip
    np.testing.assert_array_equal(read_image(d / "a.png"), read_image(d / "b.png"))


def test_cli_look_export_writes_cube_and_hald(files, capsys):
    d = files
    code = main(["look", "export", str(d / "content.png"), str(d / "style.png"), "-o",
                 str(d / "l.cube"), "--lut-size", "9", "--hald", str(d / "h.png"),
                 "--threads", "1"])  # fmt: skip
    assert code == 0
    assert "mean CIEDE2000" in capsys.readouterr().out
    assert "LUT_3D_SIZE 9" in (d / "l.cube").read_text()
    assert Image.open(d / "h.png").size == (512, 512)


@pytest.mark.parametrize(
    "argv",
    [
        ["fast", "{content}", "--look", "{bad}", "-o", "{out}.png"],
        ["look", "export", "{content}", "--look", "{bad}", "-o", "{out}.cube"],
        ["look", "export", "{content}", "--look", "{bad}", "-o", "{out}.cube", "--hald",
         "{out}.png"],
        ["look", "{content}", "-o", "{out}.png"],  # a look file ends in .dpst
        ["look", "export", "{content}", "-o", "{out}.cube"],  # neither STYLE nor --look
        ["look", "export", "{content}", "{content}", "-o", "{out}.cube", "--lut-size", "1"],
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2_and_no_output(files, capsys, argv):
    (files / "bad.dpst").write_bytes(b"PK\x03\x04 truncated")
    names = {"content": files / "content.png", "bad": files / "bad.dpst", "out": files / "out"}
    code = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "error" in err, err
    assert not list(files.glob("out*")) and not list(files.glob(".out*"))


def test_write_look_is_atomic(stylizer, images, tmp_path, monkeypatch):
    import dpst.serve.runtime.looks as preset

    path = tmp_path / "l.dpst"
    look = encode_look(stylizer, images[1])
    write_look(path, look)
    before = path.read_bytes()

    def broken(_look):
        raise OSError("disk full")

    monkeypatch.setattr(preset, "look_to_bytes", broken)
    with pytest.raises(OSError):
        write_look(path, look)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["l.dpst"]


def test_look_modules_import_without_torch():

    script = (
        "import sys\nsys.modules['torch'] = None\n"
        "import dpst.serve.runtime.looks, dpst.serve.runtime.look_export\n"
        "import dpst.serve.runtime.lut_files\n"
        "import dpst.serve.runtime.lut_fit, dpst.commands.look\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
