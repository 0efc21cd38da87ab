"""``dpst stylize --snapshot-every``: snapshots never replace an input, and a snapshot that
cannot be written costs the run nothing but its snapshots (issue 25, items 1-2)."""

import errno
import os
import shutil
from pathlib import Path

import pytest

import dpst.imageio as imageio
from dpst.cli import main
from dpst.imageio import read_image, write_image
from tests.conftest import sample_photo

FAST = ["--size", "24", "--backbone", "random", "--no-postfilter", "--quiet", "--masks", "none"]
FAST += ["--stages", "1"]


@pytest.fixture
def pair(tmp_path):
    write_image(tmp_path / "c.png", sample_photo("chelsea", 24))
    write_image(tmp_path / "s.png", sample_photo("coffee", 24))
    return tmp_path / "c.png", tmp_path / "s.png"


@pytest.fixture
def no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the snapshots were not checked before the work")

    monkeypatch.setattr(imageio, "read_image", forbidden)


def _one_line(capsys, code, *words):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_restyling_a_snapshot_never_overwrites_it(tmp_path, pair, capsys, no_work):
    content, style = pair
    snapshots = tmp_path / "p.snapshots"
    snapshots.mkdir()
    earlier = snapshots / "level0_stage1_00002.png"
    shutil.copy(content, earlier)
    before = earlier.read_bytes()
    args = [str(earlier), str(style), "-o", str(tmp_path / "p.png"), "--snapshot-every", "2"]
    code = main(["stylize", *args, *FAST, "--iters", "2"])
    _one_line(capsys, code, "would replace the content photo")
    assert earlier.read_bytes() == before
    # A hard link into the folder is the same file under another name.
    earlier.unlink()
    os.link(style, snapshots / "level0_stage1_00004.png")
    code = main(["stylize", str(content), str(style), "-o", str(tmp_path / "p.png"),
                 "--snapshot-every", "2", *FAST, "--iters", "4"])  # fmt: skip
    _one_line(capsys, code, "would replace the style photo")


def test_a_snapshot_folder_that_is_a_file_is_refused_before_the_work(
    tmp_path, pair, capsys, no_work
):
    (tmp_path / "o.snapshots").write_text("a file")
    code = main(["stylize", *map(str, pair), "-o", str(tmp_path / "o.png"),
                 "--snapshot-every", "1", *FAST, "--iters", "1"])  # fmt: skip
    _one_line(capsys, code, "o.snapshots", "is a file")


def test_a_snapshot_that_cannot_be_written_leaves_the_result(tmp_path, pair, capsys, monkeypatch):
    real = imageio.atomic_write
    snapshots = tmp_path / "o.snapshots"

    def disk_full(path, write):
        if Path(path).parent == snapshots:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, write)

    monkeypatch.setattr(imageio, "atomic_write", disk_full)
    out = tmp_path / "o.png"
    code = main(["stylize", *map(str, pair), "-o", str(out), "--snapshot-every", "1",
                 *FAST, "--iters", "3"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [x for x in err.splitlines() if "could not write" in x]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], err
    assert "Traceback" not in err
    assert read_image(out).shape == sample_photo("chelsea", 24).shape
    assert (tmp_path / "o.png.json").is_file()
