"""Pair-aware automatic labels: grouping, small-region merging, orphan remapping, report."""

from __future__ import annotations

import json

import numpy as np
import torch

from dpst.models.ade20k import ADE20K_CLASSES, GROUP_NAMES, class_to_group_table, group_id
from dpst.models.auto_labels import AutoLabelConfig, auto_labels
from dpst.models.segmenter import NoSegmenter, Segmenter, SegmenterConfig
from tests.conftest import sample_photo
from tests.tiny_segformer import save_tiny_segformer

CLS = {name: i for i, name in enumerate(ADE20K_CLASSES)}


class ScriptedSegmenter(Segmenter):
    """Returns fixed ADE20K class maps, told apart by image height: a stand-in network."""

    class_names = ADE20K_CLASSES
    group_names = GROUP_NAMES
    class_to_group = class_to_group_table(ADE20K_CLASSES)

    def __init__(self, maps: dict[int, np.ndarray]) -> None:
        self.maps = maps

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.maps[image.shape[-2]])[None]

    def describe(self) -> dict:
        return {"backend": "scripted"}


def paint(shape, regions) -> np.ndarray:
    """Class map: ``regions`` = [(class name, row slice, col slice)], painted in order."""
    out = np.zeros(shape, dtype=np.int64)
    for name, rows, cols in regions:
        out[rows, cols] = CLS[name]
    return out


def test_orphans_follow_relations_then_colour_and_small_regions_merge():
    # Content (40x50): sky, a lake, a dark mountain, a 4-pixel person (0.2 %).
    content_map = paint(
        (40, 50),
        [
            ("sky", slice(0, 15), slice(None)),
            ("lake", slice(15, 40), slice(0, 25)),
            ("hill", slice(15, 40), slice(25, 50)),
            ("person", slice(20, 22), slice(10, 12)),
        ],
    )
    # Style (30x30): sky, a building, a road; no water, no mountain.
    style_map = paint(
        (30, 30),
        [
            ("sky", slice(0, 10), slice(None)),
            ("skyscraper", slice(10, 20), slice(None)),
            ("sidewalk", slice(20, 30), slice(None)),
        ],
    )
    content = np.zeros((40, 50, 3), np.float32)
    content[15:, 25:] = 0.1  # the mountain is dark
    style = np.zeros((30, 30, 3), np.float32)
    style[:10] = [0.5, 0.7, 1.0]
    style[10:20] = 0.9  # a white building
    style[20:] = 0.15  # a dark road: the mountain's nearest colour
    seg = ScriptedSegmenter({40: content_map, 30: style_map})

    result = auto_labels(content, style, AutoLabelConfig(min_fraction=0.01), segmenter=seg)
    report = result.report
    assert result.content.shape == (40, 50) and result.style.shape == (30, 30)
    assert set(np.unique(result.content)) <= set(np.unique(result.style))
    assert report["orphans"] == {"mountain": "road", "water": "sky"}  # relation, then colour
    assert report["merged"] == {"person": "water"}  # surrounded by the lake
    assert result.content[21, 11] == group_id("sky")  # person -> water -> sky
    assert report["content"]["groups_found"]["person"] == round(4 / 2000, 4)
    assert report["content"]["classes"]["lake"] == round((25 * 25 - 4) / 2000, 4)
    assert report["label_names"] == list(GROUP_NAMES)
    assert report["label_colours"]["sky"] == "blue"
    assert report["label_ids"] == sorted({group_id("sky"), group_id("road")})
    json.dumps(report)  # JSON-ready


def test_style_groups_present_in_the_content_are_kept():
    content_map = paint(
        (20, 20), [("sky", slice(0, 10), slice(None)), ("tree", slice(10, 20), slice(None))]
    )
    style_map = paint(
        (10, 10), [("sky", slice(0, 5), slice(None)), ("palm", slice(5, 10), slice(None))]
    )
    seg = ScriptedSegmenter({20: content_map, 10: style_map})
    result = auto_labels(
        np.zeros((20, 20, 3), np.float32), np.zeros((10, 10, 3), np.float32), segmenter=seg
    )
    assert result.report["orphans"] == {}
    assert set(np.unique(result.content)) == {group_id("sky"), group_id("tree")}


def test_none_backend_gives_one_region():
    content, style = sample_photo("chelsea", 32), sample_photo("coffee", 24)
    config = AutoLabelConfig(segmenter=SegmenterConfig(backend="none"))
    result = auto_labels(content, style, config)
    assert result.content.shape == content.shape[:2] and not result.content.any()
    assert result.style.shape == style.shape[:2] and not result.style.any()
    assert result.report["label_names"] == ["all"]
    assert result.report["segmenter"] == {"backend": "none"}
    assert result.report["orphans"] == {}
    assert isinstance(NoSegmenter(), Segmenter)


def test_tiny_segformer_pair(tmp_path):
    folder = save_tiny_segformer(tmp_path / "tiny")
    content, style = sample_photo("chelsea", 64), sample_photo("coffee", 48)
    segmenter = SegmenterConfig(weights=str(folder), device="cpu")
    result = auto_labels(content, style, AutoLabelConfig(segmenter, min_fraction=0.01))
    assert result.content.shape == content.shape[:2] and result.content.dtype == np.int64
    assert result.style.shape == style.shape[:2]
    assert 0 <= result.content.min() and result.content.max() < len(GROUP_NAMES)
    assert set(np.unique(result.content)) <= set(np.unique(result.style))
    for labels in (result.content, result.style):  # no region under 1 % survives, in either
        areas = np.bincount(labels.ravel()) / labels.size
        assert (areas[areas > 0] >= 0.01).all()
    names = result.report["label_names"]
    for merged, target in result.report["merged"].items():  # the same merge in both photos
        assert names.index(merged) not in result.content and names.index(merged) not in result.style
        assert names.index(target) in result.style or names.index(target) in result.content
    # The default, as published, merges nothing.
    assert auto_labels(content, style, AutoLabelConfig(segmenter)).report["merged"] == {}
    assert result.report["segmenter"]["weights_from"] == "local folder"
