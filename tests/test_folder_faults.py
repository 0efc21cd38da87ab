"""dpst fast on a folder, told the truth: a full disk stops the run saying what is kept (it
was "skipped" photo by photo), a folder named as an output is not "already there", a broken
symlink is listed; a missing $DPST_MODEL is named, and a model without its checksum said
(issue 25, item 7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.serve.runtime.batch import LOCK_FILE
from tests.fast_model import shared_tiny_model
from tests.faults import fill_disk_for, one_line_error


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "in" / f"p{index}.png")
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "s.png")
    return tmp_path


def _fast(d, model, *extra):
    return main(["fast", str(d / "in"), str(d / "s.png"), "--out-dir", str(d / "out"),
                 "--model", str(model), "--masks", "none", *extra])  # fmt: skip


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds files through /proc")
def test_a_full_disk_stops_the_folder_in_one_line(folder, model, capsys, monkeypatch):
    out = folder / "out"
    fill_disk_for(monkeypatch, f"{out}/.p")
    err = one_line_error(capsys, _fast(folder, model))
    assert "No space left on device" in err and "0 written and kept" in err
    assert "skipped" not in err
    assert sorted(p.name for p in out.iterdir()) == ["dpst-fast.json"]  # no temporary, no lock


def test_a_folder_named_as_an_output_is_no_result(folder, model, capsys):
    (folder / "out" / "p1.png").mkdir(parents=True)
    assert _fast(folder, model) == 1
    captured = capsys.readouterr()
    assert "2 written" in captured.out and "0 already there" in captured.out
    assert "p1.png is a folder" in captured.err
    assert (folder / "out" / "p0.png").is_file() and (folder / "out" / "p1.png").is_dir()


def test_a_broken_symlink_in_the_folder_is_listed(folder, model, capsys):
    (folder / "in" / "gone.png").symlink_to(folder / "nowhere.png")
    assert _fast(folder, model) == 1
    captured = capsys.readouterr()
    assert "3 written" in captured.out and "1 failed" in captured.out
    assert "gone.png" in captured.err
    assert not (folder / "out" / LOCK_FILE).exists()


def test_a_missing_dpst_model_is_named(folder, capsys, monkeypatch):
    monkeypatch.setenv("DPST_MODEL", str(folder / "missing.onnx"))
    code = main(["fast", str(folder / "in" / "p0.png"), str(folder / "s.png"), "-o",
                 str(folder / "o.png"), "--masks", "none"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"$DPST_MODEL names {folder / 'missing.onnx'}: no such file" in err


def test_a_model_without_its_checksum_is_said_once(folder, model, capsys):
    copy = folder / "model"
    shutil.copytree(model.parent, copy)
    for sidecar in copy.glob("*.sha256"):
        sidecar.unlink()
    model_flag = ["--model", str(copy / "model.onnx")]
    code = main(["fast", str(folder / "in" / "p0.png"), str(folder / "s.png"), "-o",
                 str(folder / "o.png"), "--masks", "none", *model_flag])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    said = [line for line in err.splitlines() if "no .sha256" in line]
    assert len(said) == 1 and "could not be checked" in said[0], err


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds files through /proc")
def test_a_record_that_cannot_be_written_is_one_line(folder, model, capsys, monkeypatch):
    out = folder / "out"
    fill_disk_for(monkeypatch, f"{out}/.dpst-fast.json")
    err = one_line_error(capsys, _fast(folder, model))
    assert "No space left on device" in err and "nothing written" in err
    assert list(out.iterdir()) == []
