"""``dpst segment`` end to end, with a tiny SegFormer and with the ``none`` backend."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.commands.segment import OUTPUT_FILES
from dpst.imageio import write_image
from dpst.labels.images import palette_array
from dpst.labels.mask_files import read_mask
from dpst.models.ade20k import GROUP_NAMES
from tests.conftest import sample_photo
from tests.tiny_segformer import save_tiny_segformer


@pytest.fixture
def pair(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    write_image(content, sample_photo("chelsea", 64))
    write_image(style, sample_photo("coffee", 48))
    return content, style


def exact_colour_labels(path) -> np.ndarray:
    """Decode a colour mask written by us: each pixel is exactly one palette colour."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    colours = palette_array().astype(np.int64)
    match = (rgb[:, :, None, :] == colours[None, None]).all(-1)
    assert match.any(-1).all(), "a pixel of no palette colour"
    return match.argmax(-1)


def test_segment_with_tiny_segformer(tmp_path, pair, capsys):
    weights = save_tiny_segformer(tmp_path / "tiny")
    out = tmp_path / "out"
    argv = ["segment", *map(str, pair), "--out-dir", str(out), "--seg-weights", str(weights)]
    assert main([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "segmenter: segformer" in printed and "wrote" in printed
    for name in OUTPUT_FILES.values():
        assert (out / name).is_file(), name

    report = json.loads((out / "segment.json").read_text())
    assert report["label_names"] == list(GROUP_NAMES)
    assert report["inputs"]["content"] == str(pair[0])
    sizes = {"content": (43, 64), "style": (32, 48)}  # chelsea and coffee at their long side
    for side, size in sizes.items():
        labels = read_mask(out / f"{side}_labels.png", size)
        assert labels.shape == size
        assert np.array_equal(exact_colour_labels(out / f"{side}_mask.png"), labels)
        names = {report["label_names"][i] for i in np.unique(labels)}
        assert names == set(report[side]["groups"])
    content = read_mask(out / "content_labels.png", sizes["content"])
    style = read_mask(out / "style_labels.png", sizes["style"])
    assert set(np.unique(content)) <= set(np.unique(style))

    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert overlay.shape[1] == 64 + 8 + 48 and overlay.shape[0] > 43  # + legend


def test_segment_with_no_segmenter(tmp_path, pair, capsys):
    out = tmp_path / "out"
    assert main(["segment", *map(str, pair), "--out-dir", str(out), "--segmenter", "none"]) == 0
    assert "none (one region)" in capsys.readouterr().out
    for side, size in (("content", (43, 64)), ("style", (32, 48))):
        for kind in ("mask", "labels"):  # both files read back as the one label, 0
            labels = read_mask(out / f"{side}_{kind}.png", size)
            assert labels.shape == size and not labels.any()
    assert json.loads((out / "segment.json").read_text())["label_names"] == ["all"]


@pytest.mark.parametrize("which", [0, 1])
def test_unreadable_image_exits_2_with_one_line(tmp_path, pair, capsys, which):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    paths = [str(p) for p in pair]
    paths[which] = str(bad)
    code = main(["segment", *paths, "--out-dir", str(tmp_path / "out"), "--segmenter", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "broken.png" in err
    assert not (tmp_path / "out").exists()


def test_missing_weights_exit_2_with_how_to_get_them(tmp_path, pair, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["segment", *map(str, pair), "--out-dir", str(tmp_path / "out")]
    assert main([*argv, "--seg-model", "dpst-test/not-downloaded", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "hf download dpst-test/not-downloaded" in err and "--seg-weights" in err


def test_weights_folder_without_weights_exit_2(tmp_path, pair, capsys):
    argv = ["segment", *map(str, pair), "--out-dir", str(tmp_path / "out")]
    assert main([*argv, "--seg-weights", str(tmp_path)]) == 2
    assert "no SegFormer weights there" in capsys.readouterr().err


def test_bad_min_region_exit_2(tmp_path, pair, capsys):
    argv = ["segment", *map(str, pair), "--out-dir", str(tmp_path / "o"), "--min-region", "1.5"]
    assert main([*argv, "--segmenter", "none"]) == 2
    assert "--min-region must be in [0, 1), got 1.5" in capsys.readouterr().err


SEGMENTER_FLAGS = {
    "--segmenter": "segmenter",
    "--seg-model": "seg_model",
    "--seg-weights": "seg_weights",
}
OLD_NAMES = {"--backend": "--segmenter", "--segmenter-model": "--seg-model"}
OLD_NAMES["--segmenter-weights"] = "--seg-weights"


def _flags(parser) -> dict[str, str]:
    """Visible option -> dest, for the segmenter's flags."""

    return {
        option: action.dest
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if action.dest in SEGMENTER_FLAGS.values()
    }


def test_segment_and_data_pairs_name_the_segmenter_flags_alike():
    from dpst.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    pairs = commands["data"]._subparsers._group_actions[0].choices["pairs"]
    for parser in (commands["segment"], pairs, commands["stylize"], commands["fast"]):
        assert _flags(parser) == SEGMENTER_FLAGS, parser.prog
        help_text = parser.format_help()
        assert not any(old in help_text for old in OLD_NAMES), parser.prog


@pytest.mark.parametrize("old, new", OLD_NAMES.items())
def test_old_segmenter_flag_names_still_work_with_a_warning(capsys, old, new):
    from dpst.cli import build_parser

    value = "none" if old == "--backend" else "somewhere"
    for argv in (
        ["segment", "c.png", "s.png", "--out-dir", "o"],
        ["data", "pairs", "p", "-o", "m"],
    ):
        args = build_parser().parse_args([*argv, old, value])
        assert getattr(args, SEGMENTER_FLAGS[new]) == value
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"warning: {old} is deprecated; use {new}") and "\n" not in err


def test_segment_runs_with_the_old_backend_flag(tmp_path, pair, capsys):
    out = tmp_path / "out"
    assert main(["segment", *map(str, pair), "--out-dir", str(out), "--backend", "none"]) == 0
    captured = capsys.readouterr()
    assert "dpst segment: warning: --backend is deprecated; use --segmenter" in captured.err
    assert "none (one region)" in captured.out
