"""The one pass (serve/runtime/pipeline.py): regions from any source, the label policy once,
the result and a report naming the regions; dpst fast and the demo both run it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.imageio import read_image, to_uint8, write_image
from dpst.labels.one_pass import prepare_one_pass
from dpst.labels.palette import PAPER_PALETTE
from dpst.labels.regions import FROM_MASK_FILES, FROM_SEGMENTER, ONE_REGION, Regions
from dpst.serve.runtime import pipeline
from dpst.serve.runtime.pipeline import run_pair
from dpst.serve.runtime.stylizer import FastStylizer
from tests.conftest import sample_photo
from tests.fast_model import shared_tiny_model

COLOUR = dict(PAPER_PALETTE)


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    return FastStylizer(shared_tiny_model(tmp_path_factory))


@pytest.fixture(scope="module")
def photos():
    return to_uint8(sample_photo("chelsea", 64)), to_uint8(sample_photo("coffee", 56))


def _halves(shape, top: int, bottom: int) -> np.ndarray:
    labels = np.full(shape, top, dtype=np.int64)
    labels[shape[0] // 2 :] = bottom
    return labels


def test_one_region_is_the_plain_pass(stylizer, photos):
    content, style = photos
    got = run_pair(stylizer, content, style, strength=0.7)
    expected = stylizer.stylize(content, style, dtype=np.uint8, strength=0.7)
    np.testing.assert_array_equal(got.image, expected)
    assert got.report == {"regions": [], "region_source": ONE_REGION}


def test_regions_go_through_the_label_policy_once(stylizer, photos):
    content, style = photos
    cl = _halves(content.shape[:2], 7, 20)  # 20: absent from the style, an orphan
    sl = _halves(style.shape[:2], 3, 7)
    got = run_pair(stylizer, content, style, Regions(cl, sl, FROM_MASK_FILES))
    prepared = prepare_one_pass(cl, sl, content, style, stylizer.max_labels)
    expected = stylizer.stylize(content, style, prepared.content, prepared.style, np.uint8)
    np.testing.assert_array_equal(got.image, expected)
    assert got.report["region_source"] == FROM_MASK_FILES
    assert got.report["orphans"] == {"20": prepared.report["orphans"]["20"]}
    assert got.report["regions"] == [f"label {i}" for i in prepared.report["label_ids"]]


def test_a_related_group_is_taken_before_a_colour_match(stylizer, photos):
    content, style = photos
    names = {0: "sky", 1: "water", 2: "ground"}
    cl = _halves(content.shape[:2], 0, 2)  # sky over ground; the style has water, ground
    sl = _halves(style.shape[:2], 1, 2)
    related = Regions(cl, sl, FROM_SEGMENTER, names, {0: (1,)})
    got = run_pair(stylizer, content, style, related)
    assert got.report["orphans"] == {"0": 1}
    assert got.report["regions"] == ["water", "ground"]
    assert got.report["region_source"] == FROM_SEGMENTER


def test_dpst_fast_and_the_demo_run_the_one_pass(tmp_path, tmp_path_factory, monkeypatch, capsys):
    """Both front ends reach run_pair with the regions they read (not a copy of it)."""
    from dpst.serve.app.config import AppConfig
    from dpst.serve.app.engine import DemoEngine, MaskRequest

    model = shared_tiny_model(tmp_path_factory)
    seen = []

    def spy(stylizer, content, style, regions=None, *args, **kwargs):
        seen.append(regions)
        return run_pair(stylizer, content, style, regions, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_pair", spy)
    monkeypatch.setattr("dpst.commands.fast.run_pair", spy)
    monkeypatch.setattr("dpst.serve.app.engine.run_pair", spy)
    files = {}
    photos = (("content", sample_photo("chelsea", 64)), ("style", sample_photo("coffee", 56)))
    for name, image in photos:
        files[name] = tmp_path / f"{name}.png"
        write_image(files[name], image)
        h, w = image.shape[:2]
        mask = np.zeros((h, w, 3), np.uint8)
        mask[: h // 2], mask[h // 2 :] = COLOUR["blue"], COLOUR["red"]
        files[f"{name}_mask"] = tmp_path / f"{name}_mask.png"
        Image.fromarray(mask).save(files[f"{name}_mask"])
    out = tmp_path / "fast.png"
    assert main(["fast", str(files["content"]), str(files["style"]), "-o", str(out),
                 "--model", str(model), "--content-mask", str(files["content_mask"]),
                 "--style-mask", str(files["style_mask"])]) == 0  # fmt: skip
    assert "regions (mask files): label 0, label 4" in capsys.readouterr().out  # blue, red
    engine = DemoEngine(AppConfig(model_path=str(model), backbone="random"))
    request = MaskRequest("upload", str(files["content_mask"]), str(files["style_mask"]))
    job = engine.run_fast(str(files["content"]), str(files["style"]), request)
    assert [r.source for r in seen] == [FROM_MASK_FILES, FROM_MASK_FILES]
    np.testing.assert_array_equal(seen[0].content, seen[1].content)
    np.testing.assert_array_equal(seen[0].style, seen[1].style)
    np.testing.assert_array_equal(read_image(out), read_image(job.path))
    assert job.report["region_source"] == FROM_MASK_FILES and len(job.report["regions"]) == 2


def test_8bit_and_float_content_give_the_same_pixels(stylizer, photos):
    """dpst fast reads 8-bit pixels, the demo and notebooks float ones: the same result."""
    content, style = photos
    cl, sl = _halves(content.shape[:2], 1, 2), _halves(style.shape[:2], 2, 1)
    as_float = content.astype(np.float32) / np.float32(255)  # as read_image reads a PNG
    for strength in (1.0, 1.5):
        eight = run_pair(stylizer, content, style, Regions(cl, sl, FROM_MASK_FILES), strength)
        floats = run_pair(stylizer, as_float, style, Regions(cl, sl, FROM_MASK_FILES), strength)
        np.testing.assert_array_equal(eight.image, floats.image)
