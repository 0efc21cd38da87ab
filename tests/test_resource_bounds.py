"""Resources a user can ask too much of: ``--threads`` bounded to 1..2x the cores, and a
``.cube`` too large refused from its header, before it is read (issue 25, item 6)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dpst.cli import main
from dpst.errors import InputError
from dpst.imageio import write_image
from dpst.lut_io import MAX_CUBE_ROW_BYTES, MAX_CUBE_SIZE, read_cube
from dpst.serve.runtime.threads import check_threads, thread_limit
from tests.faults import one_line_error


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "c.png", rng.random((24, 32, 3)))
    write_image(tmp_path / "s.png", rng.random((24, 32, 3)))
    return tmp_path


@pytest.mark.parametrize("threads", ["0", "-1", "100000", str(2 * (os.cpu_count() or 1) + 1)])
def test_threads_out_of_bounds_are_refused_in_one_line(pair, capsys, threads):
    d = pair
    out = d / "o.png"
    for argv in (
        ["fast", str(d / "c.png"), str(d / "s.png"), "-o", str(out), "--masks", "none"],
        ["look", str(d / "s.png"), "-o", str(d / "l.dpst"), "--masks", "none"],
        ["video", str(d / "in.mp4"), str(d / "s.png"), "-o", str(d / "o.mp4")],
    ):
        code = main([*argv, "--threads", threads])
        one_line_error(capsys, code, "--threads must be 1 to", f"got {threads}")
    assert sorted(p.name for p in d.iterdir()) == ["c.png", "s.png"]


def test_threads_within_bounds_run(pair, capsys):
    d = pair
    limit = thread_limit()
    assert limit == 2 * (os.cpu_count() or 1)
    assert check_threads(None) is None and check_threads(limit) == limit
    code = main(["fast", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "o.png"),
                 "--masks", "none", "--threads", "1"])  # fmt: skip
    assert code == 0, capsys.readouterr().err


def test_the_runtime_refuses_an_unbounded_thread_count_too():
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    with pytest.raises(InputError, match="threads must be 1 to"):
        FastStylizer(BUNDLED_MODEL, threads=100000)


def test_a_cube_too_large_is_refused_from_its_header(tmp_path, monkeypatch):
    import pillow_lut

    def parsed(*args, **kwargs):
        raise AssertionError("parsed in full before its size was checked (was 24 s, 3.5 GB)")

    monkeypatch.setattr(pillow_lut, "load_cube_file", parsed)
    big = tmp_path / "big.cube"
    # 256 nodes said, and more rows than any 65-node file holds: neither may be read in full.
    row = "0.500000 0.500000 0.500000\n"
    with open(big, "w") as fh:
        fh.write('TITLE "big"\nLUT_3D_SIZE 256\n')
        fh.write(row * 200_000)
    with pytest.raises(InputError, match="LUT_3D_SIZE 256: at most 65"):
        read_cube(big)
    huge = tmp_path / "huge.cube"
    with open(huge, "wb") as fh:  # sparse: the size alone is enough to refuse it
        fh.truncate(MAX_CUBE_ROW_BYTES * MAX_CUBE_SIZE**3 + 1)
    with pytest.raises(InputError, match="too large"):
        read_cube(huge)
