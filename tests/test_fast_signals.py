"""``dpst fast`` on a folder: one run at a time (the record checked under a lock), the
temporaries of a killed run removed, and SIGTERM/SIGHUP leaving only whole files (issue 25,
items 3-4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.serve.runtime.batch import LOCK_FILE, RECORD_FILE, folder_lock
from tests.fast_model import shared_tiny_model

SUBPROCESS_TIMEOUT = 240


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


def _folder(tmp_path, count=3, side=32):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{index:02d}.png")
    style = tmp_path / "style.png"
    Image.fromarray(np.full((16, 16, 3), (200, 80, 40), np.uint8)).save(style)
    return folder, style


def _fast(folder, style, out, model, *extra):
    return main(["fast", str(folder), str(style), "--out-dir", str(out), "--model", str(model),
                 "--masks", "none", *extra])  # fmt: skip


def test_a_folder_being_written_is_refused_and_the_record_untouched(tmp_path, model, capsys):
    folder, style = _folder(tmp_path)
    out = tmp_path / "out"
    # Another run holds the folder (a lock is per open file: this process counts as another).
    with folder_lock(out):
        code = _fast(folder, style, out, model, "--strength", "1.8")
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"process {os.getpid()}" in err and "another dpst fast" in err
        assert not (out / RECORD_FILE).exists() and not list(out.glob("p*.png"))
    assert not (out / LOCK_FILE).exists()  # released, and the file removed
    assert _fast(folder, style, out, model, "--strength", "0.2") == 0


def test_a_lock_left_by_a_killed_run_is_stale_and_its_temporaries_removed(tmp_path, model, capsys):
    folder, style = _folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text("999999999\n")  # no one holds it: its writer is gone
    left = [out / ".p00.png.k2j3h4.tmp", out / f".{RECORD_FILE}.x8y9.tmp"]
    for tmp in left:
        tmp.write_bytes(b"half a photo")
    unrelated = out / ".notes.txt.tmp"  # not a name this run writes: not its business
    unrelated.write_text("mine")
    assert _fast(folder, style, out, model) == 0, capsys.readouterr().err
    assert not any(tmp.exists() for tmp in left)
    assert unrelated.exists()
    assert sorted(p.name for p in out.glob("p*.png")) == ["p00.png", "p01.png", "p02.png"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_leaves_only_whole_results(tmp_path, model, sig):
    folder, style = _folder(tmp_path, count=40, side=512)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpst", "fast", str(folder), str(style), "--out-dir", str(out),
         "--model", str(model), "--masks", "none", "--threads", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while not list(out.glob("p*.png")):  # mid-run: a result is written, more to come
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err[-2000:]
    assert "Traceback" not in err and f"interrupted ({sig.name})" in err
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out / LOCK_FILE).exists()
    written = list(out.glob("p*.png"))
    assert 0 < len(written) < 40
    for result in written:
        with Image.open(result) as img:
            img.load()  # whole, not truncated


def test_a_signal_mid_write_leaves_no_temporary(tmp_path, capsys):
    """What dpst look and look export rest on: the signal unwinds the atomic write."""
    from dpst.commands.signals import interruptible
    from dpst.imageio import atomic_write

    def work():
        def write(fh):
            fh.write(b"half a LUT")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once; never reached

        atomic_write(tmp_path / "look.cube", write)
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert interruptible("look", work, "nothing written") == 143
    assert list(tmp_path.iterdir()) == []
    assert "dpst look: interrupted (SIGTERM): nothing written" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
