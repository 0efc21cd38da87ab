"""Folders a user cannot read or search are one line and exit 2, not a PermissionError; an
empty CONTENT is not the current folder (issue 25, items 5 and 7).

Root reads and searches any folder, so as root the commands run with the two capabilities
that allow it dropped (``setpriv``), which is how they behave for any other user; skipped,
with the reason, where that cannot be done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main

SUBPROCESS_TIMEOUT = 240
DROP = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and no setpriv to drop root's reading of every folder")
    probe = subprocess.run([*DROP, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root, and setpriv cannot drop capabilities here: {probe.stderr}")
    return DROP


@pytest.fixture
def place(tmp_path):
    (tmp_path / "in").mkdir()
    pixels = np.zeros((16, 16, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in" / "a.png")
    Image.fromarray(pixels).save(tmp_path / "s.png")
    (tmp_path / "locked" / "sub").mkdir(parents=True)
    yield tmp_path
    for folder in ("in", "locked"):
        (tmp_path / folder).chmod(0o755)


def _dpst(cwd, *argv):
    done = subprocess.run(
        [*_unprivileged(), sys.executable, "-m", "dpst", *argv], cwd=cwd, capture_output=True,
        text=True, timeout=SUBPROCESS_TIMEOUT, env={**os.environ, "DPST_OFFLINE": "1"},
    )  # fmt: skip
    return done.returncode, done.stderr.strip()


@pytest.mark.parametrize(
    "argv, said",
    [
        (["fast", "in", "s.png", "--out-dir", "o"], "cannot read the folder in"),
        (["fast", "s.png", "s.png", "-o", "locked/sub/o.png"], "cannot reach locked/sub"),
        (["fast", "in/*.png", "s.png", "--out-dir", "locked/sub/o"], "cannot reach locked/sub/o"),
    ],
)
def test_a_folder_that_cannot_be_read_or_searched_is_one_line(place, argv, said):
    _unprivileged()  # skip before changing anything
    (place / "locked").chmod(0)
    if argv[1] == "in":
        (place / "in").chmod(0)
    code, err = _dpst(place, *argv, "--masks", "none")
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert said in err and "Permission denied" in err, err


def test_an_empty_content_is_not_the_current_folder(place, capsys, monkeypatch):
    monkeypatch.chdir(place)
    code = main(["fast", "", "s.png", "--out-dir", "o", "--masks", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "CONTENT is empty" in err, err
    assert not (place / "o").exists()
