"""``dpst fast`` on a folder: resumable, bad files listed and the rest done, names, profiles and
orientation kept; and the 8-bit photo I/O it rests on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.imageio import Photo, read_photo, write_photo
from dpst.serve.runtime.batch import RECORD_FILE, content_files, output_path, run_folder
from tests.fast_model import shared_tiny_model

# A made-up ICC payload is enough: Pillow stores the bytes as given.
PROFILE = b"\x00\x00\x01\x00fake icc profile for the test"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


def _photos(folder, count=3, size=(24, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{index}.png", icc_profile=PROFILE)
    return sorted(folder.glob("*.png"))


def _run(*argv):
    return main(["fast", *map(str, argv), "--masks", "none"])


def test_folder_is_done_once_and_a_rerun_writes_nothing(tmp_path, model, capsys):
    photos = _photos(tmp_path / "in")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    style = tmp_path / "style.png"
    Image.fromarray(np.full((16, 16, 3), (200, 80, 40), np.uint8)).save(style)
    out = tmp_path / "out"
    assert _run(tmp_path / "in", style, "--out-dir", out, "--model", model) == 1  # one failed
    captured = capsys.readouterr()
    assert "3 written" in captured.out and "1 failed" in captured.out
    assert "broken.jpg" in captured.err and "Traceback" not in captured.err
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("p*.png")}
    assert sorted(written) == [p.name for p in photos]
    for photo in photos:
        result = Image.open(out / photo.name)
        assert result.size == Image.open(photo).size
        assert result.info.get("icc_profile") == PROFILE  # the colour profile travels
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["settings"]["masks"] == "none"
    one = {"regions": [], "region_source": "one region"}
    assert record["photos"] == {photo.name: one for photo in photos}  # the broken one: none

    assert _run(tmp_path / "in", style, "--out-dir", out, "--model", model) == 1
    assert "0 written" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("p*.png")} == written

    # A glob of the good photos: nothing left to do, exit 0.
    assert _run(str(tmp_path / "in" / "p*.png"), style, "--out-dir", out, "--model", model) == 0


def test_an_interrupted_folder_resumes_where_it_stopped(tmp_path, model):
    photos = _photos(tmp_path / "in", count=4)
    calls = []

    def stylize(pixels):
        calls.append(pixels.shape)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third photo
        return 255 - pixels

    with pytest.raises(KeyboardInterrupt):
        run_folder(photos, tmp_path / "out", stylize)
    done = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert done == ["p0.png", "p1.png"]  # whole files only, nothing half-written
    report = run_folder(photos, tmp_path / "out", lambda p: 255 - p)
    assert [p.name for p in report.skipped] == ["p0.png", "p1.png"]
    assert [p.name for p in report.done] == ["p2.png", "p3.png"]
    for photo in photos:
        expected = 255 - np.asarray(Image.open(photo).convert("RGB"))
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "out" / photo.name)), expected
        )


def test_the_record_keeps_each_written_photos_notes_across_an_interruption(tmp_path):
    photos = _photos(tmp_path / "in", count=3)
    settings = {"style_sha256": "x", "masks": "auto"}

    def noted(pixels, stop_at=None):
        if stop_at is not None and int(pixels[0, 0, 0]) == stop_at:
            raise KeyboardInterrupt
        return 255 - pixels, {"first": int(pixels[0, 0, 0])}

    firsts = [int(np.asarray(Image.open(p))[0, 0, 0]) for p in photos]
    with pytest.raises(KeyboardInterrupt):
        run_folder(photos, tmp_path / "out", lambda p: noted(p, firsts[2]), None, settings)
    path = tmp_path / "out" / RECORD_FILE
    record = json.loads(path.read_text())
    assert record["photos"] == {"p0.png": {"first": firsts[0]}, "p1.png": {"first": firsts[1]}}
    run_folder(photos, tmp_path / "out", noted, None, settings)
    record = json.loads(path.read_text())
    assert record["settings"] == settings
    assert record["photos"] == {p.name: {"first": f} for p, f in zip(photos, firsts, strict=True)}


def test_other_settings_in_the_same_folder_are_refused(tmp_path, model, capsys):
    _photos(tmp_path / "in", count=1)
    out = tmp_path / "out"
    for colour in ((200, 80, 40), (20, 80, 200)):
        Image.fromarray(np.full((16, 16, 3), colour, np.uint8)).save(tmp_path / f"s{colour[0]}.png")
    assert _run(tmp_path / "in", tmp_path / "s200.png", "--out-dir", out, "--model", model) == 0
    capsys.readouterr()
    assert _run(tmp_path / "in", tmp_path / "s20.png", "--out-dir", out, "--model", model) == 2
    err = capsys.readouterr().err
    assert "other settings (style_sha256 differs)" in err and len(err.strip().splitlines()) == 1


def test_folder_and_single_arguments_are_checked_before_work(tmp_path, model, capsys):
    _photos(tmp_path / "in", count=1)
    style = tmp_path / "in" / "p0.png"
    assert _run(tmp_path / "in", style, "-o", tmp_path / "x.png", "--model", model) == 2
    assert "give --out-dir" in capsys.readouterr().err
    assert _run(style, style, "--out-dir", tmp_path / "o", "--model", model) == 2
    assert "give -o" in capsys.readouterr().err
    # Results would overwrite the photos themselves.
    assert _run(tmp_path / "in", style, "--out-dir", tmp_path / "in", "--model", model) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert (
        _run(str(tmp_path / "none*.jpg"), style, "--out-dir", tmp_path / "o", "--model", model) == 2
    )
    assert "no photos found" in capsys.readouterr().err


def test_content_files_and_output_names(tmp_path):
    for name in ("b.JPG", "a.png", "c.gif", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in content_files(str(tmp_path))] == ["a.png", "b.JPG", "c.gif"]
    assert output_path(tmp_path / "b.JPG", tmp_path / "o").name == "b.JPG"
    assert output_path(tmp_path / "c.gif", tmp_path / "o").name == "c.png"  # GIF not written


def test_read_photo_applies_orientation_and_keeps_profile_and_exif(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: viewers turn it 90 degrees clockwise
    exif[0x010F] = "TestCam"  # Make
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif, icc_profile=PROFILE)
    photo = read_photo(tmp_path / "turned.png")
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == (20, 10, 3)
    assert photo.pixels[0].min() == 255 and photo.pixels[-1].max() == 0  # white on top now
    assert photo.icc_profile == PROFILE
    write_photo(tmp_path / "out.jpg", photo)
    written = Image.open(tmp_path / "out.jpg")
    assert written.size == (10, 20) and written.info.get("icc_profile") == PROFILE
    kept = written.getexif()
    assert kept.get(0x010F) == "TestCam" and kept.get(0x0112, 1) == 1  # not turned twice
    # JPEG at quality 95: near the source, where Pillow's default 75 is visibly off.
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    write_photo(tmp_path / "smooth.jpg", Photo(smooth))
    error = np.abs(np.asarray(Image.open(tmp_path / "smooth.jpg"), float) - smooth).mean()
    assert error < 1.0


def test_a_folder_takes_a_saved_look_with_the_same_results(tmp_path, model, capsys):
    _photos(tmp_path / "in", count=2)
    style = tmp_path / "style.png"
    Image.fromarray(np.full((16, 16, 3), (200, 80, 40), np.uint8)).save(style)
    look = tmp_path / "s.dpst"
    assert main(["look", str(style), "-o", str(look), "--model", str(model)]) == 0
    assert _run(tmp_path / "in", style, "--out-dir", tmp_path / "a", "--model", model) == 0
    argv = ["fast", str(tmp_path / "in"), "--look", str(look), "--out-dir", str(tmp_path / "b")]
    assert main([*argv, "--model", str(model)]) == 0
    for name in ("p0.png", "p1.png"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "a" / name)),
            np.asarray(Image.open(tmp_path / "b" / name)),
        )


def test_photos_of_one_name_in_two_folders_are_refused_before_work(tmp_path, model, capsys):
    for folder in ("a", "b"):
        _photos(tmp_path / "shoot" / folder, count=1)
    style = tmp_path / "shoot" / "a" / "p0.png"
    pattern = str(tmp_path / "shoot" / "**" / "*.png")
    assert _run(pattern, style, "--out-dir", tmp_path / "out", "--model", model) == 2
    err = capsys.readouterr().err
    assert "would both be written as" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


def test_a_rerun_with_another_strength_is_refused_and_an_old_record_is_the_default(
    tmp_path, model, capsys
):
    _photos(tmp_path / "in", count=1)
    style = tmp_path / "style.png"
    Image.fromarray(np.full((16, 16, 3), (200, 80, 40), np.uint8)).save(style)
    out = tmp_path / "out"
    argv = (tmp_path / "in", style, "--out-dir", out, "--model", model)
    assert _run(*argv, "--strength", "0.5") == 0
    assert json.loads((out / RECORD_FILE).read_text())["settings"]["strength"] == 0.5
    capsys.readouterr()
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert "other settings (strength 0.5 -> 1.0)" in err and len(err.strip().splitlines()) == 1
    assert _run(*argv, "--strength", "0.5") == 0  # the same strength resumes
    # A folder begun before --strength existed (no strength recorded): the default's.
    record = json.loads((out / RECORD_FILE).read_text())
    del record["settings"]["strength"]
    (out / RECORD_FILE).write_text(json.dumps(record))
    assert _run(*argv) == 0
    assert _run(*argv, "--strength", "0.5") == 2
    assert "strength 1.0 -> 0.5" in capsys.readouterr().err
