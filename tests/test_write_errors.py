"""A write that fails (a full disk) costs one line and exit 2 with nothing half-written, in
dpst look, look export (the .cube and its Hald CLUT both or neither) and video (issue 25,
item 5)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from dpst.cli import main
from dpst.imageio import write_image
from tests.faults import fill_disk_for, one_line_error

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="the injected error finds files in /proc"
)


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "c.png", rng.random((24, 32, 3)))
    write_image(tmp_path / "s.png", rng.random((24, 32, 3)))
    return tmp_path


@pytest.fixture
def full_for(monkeypatch):
    """``full_for(name)``: writing a file whose name contains ``name`` fails as on a full
    disk."""
    return lambda name: fill_disk_for(monkeypatch, name)


def test_look_export_writes_the_cube_and_the_hald_or_neither(pair, capsys, full_for):
    d = pair
    full_for("h.png")
    code = main(["look", "export", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "l.cube"),
                 "--lut-size", "5", "--hald", str(d / "h.png"), "--threads", "1"])  # fmt: skip
    one_line_error(capsys, code, "could not write", "h.png", "No space left on device")
    assert sorted(p.name for p in d.iterdir()) == ["c.png", "s.png"]


def test_a_look_onto_a_full_disk_is_one_line(pair, capsys, full_for):
    full_for("l.dpst")
    code = main(["look", str(pair / "s.png"), "-o", str(pair / "l.dpst"), "--masks", "none"])
    one_line_error(capsys, code, "could not write", "l.dpst", "No space left on device")
    assert sorted(p.name for p in pair.iterdir()) == ["c.png", "s.png"]


def test_a_video_onto_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    av = pytest.importorskip("av")
    from tests.test_video import make_clip

    clip = make_clip(tmp_path / "in.mp4", audio=False)
    write_image(tmp_path / "s.png", np.random.default_rng(0).random((24, 32, 3)))

    # FFmpeg writes through its own file handle: the error it raises (an OSError) is
    # injected where the muxer reports it.
    def disk_full(*args, **kwargs):
        raise av.error.OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("dpst.serve.runtime.video.process_video", disk_full)
    code = main(["video", str(clip), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.mp4"),
                 "--threads", "1"])  # fmt: skip
    one_line_error(capsys, code, "could not write", "o.mp4", "No space left on device")
    assert not (tmp_path / "o.mp4").exists()
