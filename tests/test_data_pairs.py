"""Pairing a folder of photos: seeded, validated, semantic when masks exist, masks cached."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dpst.cli import main
from dpst.data.manifest import check_manifest, read_manifest
from dpst.data.pairs import (
    PairingConfig,
    build_pairs,
    choose_styles,
    label_histogram,
    overlap,
    write_label_map,
)
from dpst.data.samples import SAMPLE_PHOTOS, write_sample_set
from dpst.errors import InputError
from dpst.models.segmenter import Segmenter


def _photos(folder, names, size=(10, 14)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        value = np.full((*size, 3), 20 * i, dtype=np.uint8)
        Image.fromarray(value).save(folder / f"{name}.png")
    return folder


def test_random_pairs_are_seeded_and_never_pair_a_photo_with_itself(tmp_path):
    photos = _photos(tmp_path / "photos", [f"p{i}" for i in range(6)])
    cfg = PairingConfig(per_content=3, seed=7)
    first = build_pairs(photos, tmp_path / "a.jsonl", cfg)
    second = build_pairs(photos, tmp_path / "b.jsonl", cfg)
    other = build_pairs(photos, tmp_path / "c.jsonl", PairingConfig(per_content=3, seed=8))
    pairs = [(e.content.name, e.style.name) for e in first.entries]
    assert pairs == [(e.content.name, e.style.name) for e in second.entries]
    assert pairs != [(e.content.name, e.style.name) for e in other.entries]
    assert len(pairs) == 18 and len(set(pairs)) == 18
    assert all(c != s for c, s in pairs)
    assert first.report["mode"] == "random"
    entries, problems = check_manifest(tmp_path / "a.jsonl")
    assert problems == [] and len(entries) == 18
    assert json.loads((tmp_path / "a.jsonl.json").read_text())["pairs"] == 18


def test_unreadable_photos_are_reported_and_left_out(tmp_path):
    photos = _photos(tmp_path / "photos", ["a", "b", "c"])
    (photos / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (photos / "notes.txt").write_text("not a photo")
    result = build_pairs(photos, tmp_path / "m.jsonl")
    assert len(result.problems) == 1 and "zz_broken.jpg" in result.problems[0]
    assert {e.content.name for e in result.entries} == {"a.png", "b.png", "c.png"}
    with pytest.raises(InputError, match="at least 2 readable photos"):
        build_pairs(_photos(tmp_path / "one", ["x"]), tmp_path / "n.jsonl")


def test_histogram_overlap():
    labels = np.array([[0, 0, 1, -1]])
    assert label_histogram(labels) == pytest.approx({0: 2 / 3, 1: 1 / 3})
    assert overlap({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5}) == pytest.approx(1.0)
    assert overlap({0: 1.0}, {1: 1.0}) == 0.0
    assert overlap({0: 0.75, 1: 0.25}, {0: 0.25, 2: 0.75}) == pytest.approx(0.25)


def test_semantic_pairing_matches_like_with_like(tmp_path):
    # Photos s0..s2 are mostly label 0 ("sky"), g0..g2 mostly label 1 ("ground").
    names = ["g0", "g1", "g2", "s0", "s1", "s2"]
    photos = _photos(tmp_path / "photos", names)
    masks = tmp_path / "masks"
    for name in names:
        labels = np.zeros((10, 14), np.int64) if name[0] == "s" else np.ones((10, 14), np.int64)
        labels[:2] = 1 - labels[:2]
        write_label_map(masks / f"{name}.png", labels)
    result = build_pairs(
        photos, tmp_path / "m.jsonl", PairingConfig(per_content=2), masks_dir=masks
    )
    assert result.report["mode"] == "semantic"
    for entry in result.entries:
        assert entry.content.stem[0] == entry.style.stem[0]
        assert entry.content_mask.name == f"{entry.content.stem}.png"
        assert entry.meta["overlap"] == pytest.approx(1.0)
    # A photo without a mask is reported and left out; semantic needs masks.
    _photos(tmp_path / "photos", ["g0", "g1", "g2", "s0", "s1", "s2", "x9"])
    result = build_pairs(photos, tmp_path / "m2.jsonl", masks_dir=masks)
    assert any("x9.png: no mask" in p for p in result.problems)
    with pytest.raises(InputError, match="semantic pairing needs masks"):
        build_pairs(photos, tmp_path / "m3.jsonl", PairingConfig(mode="semantic"))


def test_too_few_good_matches_fill_in_with_the_best():
    scores = np.array(
        [[1.0, 0.9, 0.1, 0.3], [0.9, 1, 0.2, 0.1], [0.1, 0.2, 1, 0.0], [0.3, 0.1, 0.0, 1]]
    )
    picks = choose_styles(4, PairingConfig(per_content=2, min_overlap=0.8), scores)
    assert picks[0] == [1, 3]  # 1 qualifies, 3 is the best of the rest
    assert picks[2] == [1, 0]


class CountingSegmenter(Segmenter):
    """Group 0 above the middle row, 1 below; counts its calls."""

    class_names = group_names = ("top", "bottom")
    class_to_group = np.array([0, 1], dtype=np.int64)

    def __init__(self):
        self.calls = 0

    def predict(self, image):
        self.calls += 1
        b, _, h, w = image.shape
        rows = torch.arange(h)[:, None].expand(h, w)
        return (rows >= h // 2).long()[None].expand(b, h, w).clone()

    def describe(self):
        return {"backend": "counting"}


def test_automatic_masks_are_cached_next_to_the_manifest(tmp_path):
    photos = _photos(tmp_path / "photos", ["a", "b", "c"])
    seg = CountingSegmenter()
    result = build_pairs(photos, tmp_path / "m.jsonl", segmenter=seg)
    assert seg.calls == 3 and result.report["mode"] == "semantic"
    cached = sorted((tmp_path / "m.masks").iterdir())
    assert len(cached) == 3
    from dpst.labels.mask_files import read_mask

    labels = read_mask(cached[0], (10, 14))
    assert (labels[:5] == 0).all() and (labels[5:] == 1).all()
    build_pairs(photos, tmp_path / "m.jsonl", segmenter=seg)
    assert seg.calls == 3  # all from the cache
    _photos(tmp_path / "photos", ["a", "b", "c", "d"])  # rewrites a..c with the same bytes
    build_pairs(photos, tmp_path / "m.jsonl", segmenter=seg)
    assert seg.calls == 4
    entries, problems = check_manifest(tmp_path / "m.jsonl")
    assert problems == [] and all(e.content_mask.parent.name == "m.masks" for e in entries)


def test_sample_set_and_data_commands(tmp_path, capsys):
    assert main(["data", "samples", str(tmp_path / "s"), "--size", "24"]) == 0
    entries, problems = check_manifest(tmp_path / "s" / "manifest.jsonl")
    assert problems == [] and len(entries) == len(SAMPLE_PHOTOS)
    assert all(e.has_masks for e in entries)

    manifest = tmp_path / "pairs.jsonl"
    code = main(
        [
            "data",
            "pairs",
            str(tmp_path / "s" / "photos"),
            "-o",
            str(manifest),
            "--per-content",
            "2",
            "--mode",
            "random",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    entries, problems = read_manifest(manifest)
    assert problems == [] and len(entries) == 2 * len(SAMPLE_PHOTOS)


def test_sample_set_without_masks(tmp_path):
    result = write_sample_set(tmp_path, long_side=16, masks=False)
    assert result.report["mode"] == "random" and not result.entries[0].has_masks


def test_data_pairs_with_a_local_segformer(tmp_path, monkeypatch):
    from tests.tiny_segformer import save_tiny_segformer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = save_tiny_segformer(tmp_path / "tiny", input_size=32)
    photos = _photos(tmp_path / "photos", ["a", "b", "c"], size=(24, 32))
    manifest = tmp_path / "m.jsonl"
    args = ["data", "pairs", str(photos), "-o", str(manifest), "--segmenter", "segformer"]
    assert main([*args, "--seg-weights", str(weights)]) == 0
    entries, problems = check_manifest(manifest)
    assert problems == [] and len(entries) == 3
    assert all(e.content_mask.parent == tmp_path / "m.masks" for e in entries)
    report = json.loads((tmp_path / "m.jsonl.json").read_text())
    assert report["masks"] == "segmenter" and report["segmenter"]["backend"] == "segformer"


def test_data_pairs_old_segmenter_flags_still_work_with_a_warning(tmp_path, monkeypatch, capsys):
    from tests.tiny_segformer import save_tiny_segformer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = save_tiny_segformer(tmp_path / "tiny", input_size=32)
    photos = _photos(tmp_path / "photos", ["a", "b"], size=(24, 32))
    manifests = {}
    for name, flags in (
        ("new", ["--segmenter", "segformer", "--seg-weights"]),
        ("old", ["--segmenter", "segformer", "--segmenter-weights"]),
    ):
        manifest = tmp_path / name / "m.jsonl"
        assert main(["data", "pairs", str(photos), "-o", str(manifest), *flags, str(weights)]) == 0
        manifests[name] = manifest
    warnings = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert warnings == [
        "dpst data pairs: warning: --segmenter-weights is deprecated; use --seg-weights"
    ]
    new, old = (json.loads((m.parent / "m.jsonl.json").read_text()) for m in manifests.values())
    assert new["segmenter"] == old["segmenter"] and old["masks"] == "segmenter"
